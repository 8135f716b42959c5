"""The `dss` command line against a scripted loopback server: login storage, output, errors."""
import json
import stat
import zipfile

import pytest
import SimpleITK as sitk

from client_cli import one_line_error, run_dss
from client_loopback import Answer, LoopbackServer
from dss_client.workspace import Workspace
from helpers import free_port

SESSION = "5e" * 20


def _server(request):
    if request.path == "/api/login":
        return Answer(200, b"logged in as ann@example.org \n",
                      {"Set-Cookie": f"webpy_session_id={SESSION}; Path=/; HttpOnly"})
    if request.path == "/api/tickets":
        return Answer(200, b'3,LungSegmentation,ready\r\n12,LungNoduleDetection,"suc,cess"\r\n')
    return Answer(400, b"Ticket 99 not found for user 1")


def test_login_stores_server_and_session_owner_only_then_reuses_them(tmp_path):
    config = tmp_path / "cfg" / "dss.json"
    with LoopbackServer(_server) as server:
        result = run_dss(config, "login", server.url, stdin="  tok123\n")
        assert result.returncode == 0, result.stderr
        assert "ann@example.org" in result.stdout
        stored = json.loads(config.read_text())
        assert stored == {"server": server.url, "session_id": SESSION, "email": "ann@example.org"}
        assert stat.S_IMODE(config.stat().st_mode) == 0o600

        listed = run_dss(config, "tickets")
        as_json = run_dss(config, "tickets", "--json")
    assert server.requests[0].body == b"token=tok123"
    assert server.requests[1].headers["Cookie"] == f"webpy_session_id={SESSION}"
    header, first, second = listed.stdout.splitlines()
    assert header.split() == ["id", "service", "status", "scan", "created"]  # an old server:
    paths = [request.path for request in server.requests]
    assert paths[-4:] == ["/api/tickets/summary", "/api/tickets"] * 2  # extension refused: CSV
    assert first.split() == ["3", "LungSegmentation", "ready"]
    assert first.index("LungSegmentation") == second.index("LungNoduleDetection")  # aligned
    assert json.loads(as_json.stdout)[1] == {"id": 12, "service": "LungNoduleDetection",
                                             "status": "suc,cess"}


def test_server_errors_are_one_line(tmp_path):
    with LoopbackServer(_server) as server:
        line = one_line_error(run_dss(tmp_path / "c.json", "--server", server.url, "status", "99"))
    assert line == "dss: ticket 99 does not exist or is not yours"


def test_unreachable_server_missing_login_and_missing_file_are_one_line(tmp_path):
    config = tmp_path / "c.json"
    assert "not logged in" in one_line_error(run_dss(config, "services"))
    down = f"http://127.0.0.1:{free_port()}"
    assert "Connection refused" in one_line_error(run_dss(config, "--server", down, "services"))
    missing = one_line_error(run_dss(config, "--server", down, "submit", str(tmp_path / "no.nii.gz"),
                                     "--service", "LungSegmentation"))
    assert "no such file" in missing
    config.write_text("{not json")
    assert "dss login" in one_line_error(run_dss(config, "tickets"))


def test_bad_server_url_folder_and_non_image_are_one_clear_line(tmp_path):
    config = tmp_path / "c.json"
    for url in ("notaurl", "host:8080"):  # urllib3 warned in two lines about the second
        assert one_line_error(run_dss(config, "--server", url, "services")) == (
            f"dss: not a server URL: '{url}' (expected http://HOST[:PORT] or https://HOST[:PORT])")
    down = f"http://127.0.0.1:{free_port()}"  # the file is checked before any request
    folder = one_line_error(run_dss(config, "--server", down, "submit", str(tmp_path),
                                    "--service", "LungSegmentation"))
    assert folder == (f"dss: {tmp_path} is a folder, not an image or an .itksnap workspace: if "
                      "it holds a DICOM series, convert the DICOM series to NIfTI or NRRD first "
                      "(e.g. with ITK-SNAP: File > Save Image)")
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    not_image = one_line_error(run_dss(config, "--server", down, "submit", str(text),
                                       "--service", "LungSegmentation"))
    assert not_image == ("dss: layer 0 (notes.txt): not an image format the services take (.nii.gz, "
                         ".nii, .nrrd, .mha, .dcm): save the image as a single .nii.gz, .nrrd or "
                         ".mha file (e.g. with ITK-SNAP: File > Save Image)")


def _submit_offline(config, image) -> str:
    """`dss submit IMAGE` to a server that is down: the image is checked before any request."""
    down = f"http://127.0.0.1:{free_port()}"
    return one_line_error(run_dss(config, "--server", down, "submit", str(image),
                                  "--service", "LungSegmentation"))


def test_images_that_are_not_3d_volumes_are_refused_before_any_ticket(tmp_path):
    flat, one_slice = tmp_path / "flat.nii.gz", tmp_path / "slice.nii.gz"
    sitk.WriteImage(sitk.Image([512, 512], sitk.sitkInt16), str(flat))
    sitk.WriteImage(sitk.Image([512, 512, 1], sitk.sitkInt16), str(one_slice))
    for image, size in ((flat, "512 x 512"), (one_slice, "512 x 512 x 1")):
        assert _submit_offline(tmp_path / "c.json", image) == (
            f"dss: {image} is a 2-D image ({size}): the services need a 3-D CT volume")


def test_image_with_negative_spacing_is_one_line(tmp_path):
    image = tmp_path / "negative.mha"
    sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkInt16), str(image))
    image.write_bytes(image.read_bytes().replace(b"ElementSpacing = 1 1 1",
                                                 b"ElementSpacing = 1 1 -2"))
    assert _submit_offline(tmp_path / "c.json", image) == (
        f"dss: cannot use {image}: ITK refuses its geometry (Negative spacing is not supported)")


def test_zip_says_to_convert_the_dicom_series_first(tmp_path):
    series = tmp_path / "series.zip"
    with zipfile.ZipFile(series, "w") as archive:
        archive.writestr("IM0001.dcm", b"DICM")
    line = _submit_offline(tmp_path / "c.json", series)
    assert line == ("dss: layer 0 (series.zip): a zip file is not an image: convert the DICOM "
                    "series to NIfTI or NRRD first (e.g. with ITK-SNAP: File > Save Image)")


@pytest.mark.parametrize("name, header", [
    ("outside.mhd", b"ObjectType = Image\nNDims = 3\nDimSize = 8 8 4\nElementType = MET_UCHAR\n"
                    b"ElementDataFile = {target}\n"),
    ("smuggled.mha", b"ObjectType = Image\nComment = x\rElementDataFile = LOCAL\nNDims = 3\n"
                     b"DimSize = 8 8 4\nElementType = MET_UCHAR\nElementDataFile = {target}\n"),
    ("outside.nhdr", b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 8 8 4\nencoding: raw\n"
                     b"data file: {target}\n\n"),
])
def test_a_layer_naming_another_file_as_its_voxels_is_refused_before_any_ticket(
        tmp_path, name, header):
    """`dss submit` reads every layer to export it: a header naming another file as its voxels
    would upload that file (here, another patient's CT) as the layer."""
    other = tmp_path / "other_patient.raw"
    other.write_bytes(b"OTHER-PATIENT" * 40)
    (tmp_path / name).write_bytes(header.replace(b"{target}", str(other).encode()))
    ct = tmp_path / "ct.nii.gz"
    sitk.WriteImage(sitk.Image([8, 8, 4], sitk.sitkInt16), str(ct))
    workspace = Workspace.for_image(ct)
    workspace.add_layer(tmp_path / name, "OverlayRole")
    line = _submit_offline(tmp_path / "c.json", workspace.save(tmp_path / "case.itksnap"))
    assert line.startswith(f"dss: layer 1 ({name}): ")
    assert "separate" in line and line.endswith("save the image as a single .nii.gz, .nrrd or "
                                                ".mha file (e.g. with ITK-SNAP: File > Save Image)")


def test_workspace_moved_without_its_images_names_the_layer_and_workspace(tmp_path):
    image = tmp_path / "saved" / "ct.nii.gz"
    image.parent.mkdir()
    sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkInt16), str(image))
    Workspace.for_image(image).save(image.parent / "case.itksnap")
    moved = (tmp_path / "moved" / "case.itksnap").resolve()
    moved.parent.mkdir()
    (image.parent / "case.itksnap").rename(moved)
    image.unlink()  # the folder it was saved in is gone, as a dispatcher's scratch folder is
    assert _submit_offline(tmp_path / "c.json", moved) == (
        f"dss: layer 0 (ct.nii.gz) was not found next to {moved} (nor at the path stored in it)")


def test_status_rounds_progress(tmp_path):
    detail = {"result": {"status": "claimed", "progress": 0.1 + 0.2555, "log": []}}

    def respond(request):
        return Answer(200, json.dumps(detail).encode())

    with LoopbackServer(respond) as server:
        shown = run_dss(tmp_path / "c.json", "--server", server.url, "status", "7")
        as_json = run_dss(tmp_path / "c.json", "--server", server.url, "status", "7", "--json")
    assert shown.stdout.strip() == "id=7  status=claimed  progress=0.356"
    assert json.loads(as_json.stdout)["progress"] == 0.356
