"""Never a 500 for bad input: random bytes and damaged headers of real image files, posted to
the API. Each answer is a 4xx JSON error, or a job that ends with a result or a 422."""
from __future__ import annotations

import gzip
import io
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_testing import ct_like_image, wait_finished, write_image

SUFFIXES = [".nii", ".nii.gz", ".nrrd", ".mha", ".zip", ".txt", ""]
REFUSALS = {400, 413, 415, 422}
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Valid small image files in every single-file format, as bytes."""
    folder = tmp_path_factory.mktemp("samples")
    image = ct_like_image(size=(12, 10, 6))
    files = {}
    for name in ("ct.nii", "ct.nrrd", "ct.mha"):
        files[name] = write_image(image, folder / name).read_bytes()
    files["ct.nii.gz"] = gzip.compress(files["ct.nii"])
    return files


@pytest.fixture
def fuzz_client(make_app):
    return make_app(max_voxels=2_000_000, queue_size=1000).test_client()


def post_and_settle(client, data: bytes, filename: str):
    response = client.post("/lung_segmentation/inference",
                           data={"itk_image": (io.BytesIO(data), filename)},
                           content_type="multipart/form-data")
    if response.status_code != 200:
        assert response.status_code in REFUSALS, (filename, response.status_code, response.data)
        assert response.get_json()["error"]
        return response.status_code
    endpoint = response.get_json()["Endpoint"]
    final = wait_finished(lambda: client.get(endpoint))
    assert final.status_code in (200, 422), (filename, final.status_code, final.data)
    return final.status_code


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_are_refused_with_a_reason(fuzz_client, data, suffix):
    post_and_settle(fuzz_client, data, "upload" + suffix)


@FUZZ
@given(name=st.sampled_from(["ct.nii", "ct.nii.gz", "ct.nrrd", "ct.mha"]),
       edits=st.lists(st.tuples(st.integers(0, 399), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 3000)))
def test_damaged_headers_never_cause_a_server_error(fuzz_client, samples, name, edits, cut):
    data = bytearray(samples[name])
    for offset, value in edits:
        if offset < len(data):
            data[offset] = value
    if cut is not None:
        data = data[:cut]
    post_and_settle(fuzz_client, bytes(data), name)


@FUZZ
@given(names=st.lists(st.text(alphabet="./\\:ab~", min_size=1, max_size=12), min_size=1,
                      max_size=4, unique=True))
def test_zip_member_names_never_escape_the_job_directory(fuzz_client, tmp_path, names):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        for name in names:
            out.writestr(name, b"not dicom")
    before = sorted(tmp_path.rglob("*"))
    assert post_and_settle(fuzz_client, archive.getvalue(), "series.zip") in REFUSALS
    after = sorted(tmp_path.rglob("*"))
    assert [p for p in after if p not in before and ".uploads" not in p.parts] == []
