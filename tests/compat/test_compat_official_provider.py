"""The official provider client (`itksnap-dss` 0.2.0, `itksnap_dss.DSSClient`, httpx) works a
ticket on our server unchanged; after each step the server's view is read with our dss_client
(the user side). Spec: dss-protocol.md d.5 and h.8."""
from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import requests
import SimpleITK as sitk
from itksnap_dss import DSSClient as OfficialClient
from itksnap_dss import WorkspaceWrapper

from compat_support import PROVIDER, TEST_SERVICES
from dss_client.workspace import Workspace


@pytest.fixture
def official(compat_stack, memory_keyring) -> OfficialClient:
    client = OfficialClient(compat_stack.url)
    client.login(compat_stack.provider_token)
    return client


def _claim_one(official: OfficialClient, githash: str, code: str) -> int:
    claimed = official.dssp_claim_ticket([githash], PROVIDER, code)
    assert claimed is not None and len(claimed) == 1
    return int(claimed["ticket"].iloc[0])


def test_login_keeps_the_session_in_the_keyring_for_the_next_client(compat_stack, memory_keyring):
    official = OfficialClient(compat_stack.url)
    official.login(compat_stack.provider_token)
    ((key, session),) = memory_keyring.passwords.items()
    assert key == ("system", f"itksnap_dss_python:{compat_stack.url}")
    assert len(session) == 40 and all(c in "0123456789abcdef" for c in session)
    # a later process: no login, the session comes from the keyring
    later = OfficialClient(compat_stack.url)
    later.login_if_needed()
    assert set(later.dssp_list_services()["service"]) >= set(TEST_SERVICES)


def test_without_a_session_or_with_a_bad_token_the_client_raises(compat_stack, memory_keyring):
    anonymous = OfficialClient(compat_stack.url)
    with pytest.raises(httpx.HTTPStatusError) as error:
        anonymous.dssp_list_services()
    assert error.value.response.status_code == 401
    with pytest.raises(httpx.HTTPStatusError) as error:
        anonymous.login("0" * 48)
    assert error.value.response.status_code == 401
    assert memory_keyring.passwords == {}


def test_services_list_is_the_four_column_table(compat_stack, official):
    services = official.dssp_list_services()
    assert list(services.columns) == ["service", "version", "hash", "provider"]
    rows = {row.service: row for row in services.itertuples()}
    for name, version in TEST_SERVICES.items():
        assert rows[name].version == version
        assert rows[name].hash == compat_stack.githashes[name]
        assert rows[name].provider == PROVIDER


def test_empty_queue_gives_none_for_claim_wait_and_available(compat_stack, official):
    githashes = [compat_stack.githashes[name] for name in TEST_SERVICES]
    assert official.dssp_available_services(githashes) is None
    assert official.dssp_claim_ticket(githashes, PROVIDER, "compat-empty") is None
    assert official.dssp_wait_for_ticket(githashes, PROVIDER, "compat-empty", timeout=0) is None


def test_available_lists_services_in_claim_order_without_claiming(compat_stack, official,
                                                                   small_ct):
    user = compat_stack.user()
    one, two = (compat_stack.githashes[name] for name in TEST_SERVICES)
    first = user.submit_workspace(small_ct, two)
    second, third = (user.submit_workspace(small_ct, one) for _ in range(2))

    available = official.dssp_available_services([one, two])
    assert list(available.columns) == ["service", "service_name", "ready_tickets"]
    assert [tuple(r) for r in available.itertuples(index=False)] == [
        (two, "CompatEchoTwo", 1), (one, "CompatEcho", 2)]
    assert [user.status(t) for t in (first, second, third)] == ["ready"] * 3

    # a claim over the same list serves the first row's service first
    claimed = [int(official.dssp_claim_ticket([one, two], PROVIDER, "compat-order")["ticket"].iloc[0])
               for _ in range(3)]
    assert claimed == [first, second, third]
    assert official.dssp_available_services([one, two]) is None
    for ticket_id in claimed:
        official.dssp_set_status(ticket_id, "failed")


def test_official_provider_works_a_ticket_end_to_end(compat_stack, official, small_ct, tmp_path):
    user = compat_stack.user()
    githash = compat_stack.githashes["CompatEcho"]
    ticket_id = user.submit_workspace(small_ct, githash)

    claimed = official.dssp_claim_ticket([githash], PROVIDER, "compat-1")
    assert list(claimed.columns) == ["ticket", "service", "status"]
    assert tuple(claimed.iloc[0]) == (ticket_id, githash, "claimed")
    assert user.status(ticket_id) == "claimed"

    # download: the files our client uploaded, the workspace opens where it landed
    inputs = tmp_path / "input"
    official.dssp_download_ticket(ticket_id, str(inputs))
    assert sorted(p.name for p in inputs.iterdir()) == sorted(f.name for f in user.files(ticket_id, "input"))
    input_ws = WorkspaceWrapper(str(inputs / f"ticket_{ticket_id:08d}.itksnap"))
    main_path = Path(input_ws.get_layer_actual_path(input_ws.get_main_layer_key()))
    assert main_path.parent == inputs
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(main_path)))
    assert np.array_equal(ct, sitk.GetArrayFromImage(sitk.ReadImage(str(small_ct))))

    # progress within a chunk: 0.5 of [0, 0.4] is 0.2 overall
    official.dssp_set_progress(ticket_id, 0.5, chunk_start=0.0, chunk_end=0.4)
    assert user.progress(ticket_id) == pytest.approx(0.2)

    # an attachment goes with the next log message
    report = tmp_path / "voxels.txt"
    report.write_text(f"bright voxels: {(ct > 0).sum()}\n")
    official.dssp_attach(ticket_id, "voxel count", str(report), "text/plain")
    official.dssp_log(ticket_id, "info", "counted the bright voxels")
    official.dssp_log(ticket_id, "warning", "this service only echoes")
    log = user.log(ticket_id)
    assert [(e.category, e.message) for e in log[-2:]] == [
        ("info", "counted the bright voxels"), ("warning", "this service only echoes")]
    assert [e.attachments for e in log[-2:]] == [1, 0]
    (attachment,) = user.log_attachments(log[-2].id)
    assert (attachment.description, attachment.mime_type) == ("voxel count", "text/plain")
    assert requests.get(attachment.url, timeout=10).text == report.read_text()

    # results: the input workspace plus a segmentation, uploaded as the official client exports
    mask = sitk.Cast(sitk.ReadImage(str(main_path)) > 0, sitk.sitkUInt8)
    mask_path = inputs / "bright.nii.gz"
    sitk.WriteImage(mask, str(mask_path))
    seg_key = input_ws.add_layer("SegmentationRole", str(mask_path))
    input_ws.set_layer_nickname(seg_key, "bright voxels")
    input_ws.add_tag(input_ws.registry.folder(seg_key), "echo-result")
    # saved next to the inputs: itksnap_ws's save_workspace re-roots moved layer paths against
    # the NEW directory, so saving a downloaded workspace elsewhere loses its layers
    result_file = inputs / "result.itksnap"
    input_ws.save_workspace(str(result_file))
    official.dssp_upload_ticket(ticket_id, str(result_file), "_results")
    official.dssp_set_progress(ticket_id, 1.0)
    official.dssp_set_status(ticket_id, "success")

    assert user.status(ticket_id) == "success"
    assert user.progress(ticket_id) == 1.0
    names = [f.name for f in user.files(ticket_id, "results")]
    assert f"ticket_{ticket_id:08d}_results.itksnap" in names and len(names) == 3
    downloaded = user.download(ticket_id, "results", tmp_path / "results")
    workspace = Workspace.load(next(p for p in downloaded if p.suffix == ".itksnap"))
    workspace.validate()
    assert [each.role for each in workspace.layers] == ["MainRole", "SegmentationRole"]
    segmentation = workspace.layers[1]
    assert segmentation.nickname == "bright voxels" and "echo-result" in segmentation.tags
    assert segmentation.path.parent == tmp_path / "results"
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(segmentation.path))), ct > 0)


def test_official_provider_fails_a_ticket_with_an_error_message(compat_stack, official, small_ct):
    user = compat_stack.user()
    githash = compat_stack.githashes["CompatEcho"]
    ticket_id = user.submit_workspace(small_ct, githash)
    assert _claim_one(official, githash, "compat-2") == ticket_id
    official.dssp_log(ticket_id, "error", "the image is not a chest CT")
    official.dssp_set_status(ticket_id, "failed")
    assert user.status(ticket_id) == "failed"
    (error,) = [e for e in user.log(ticket_id) if e.category == "error"]
    assert error.message == "the image is not a chest CT"
    assert user.files(ticket_id, "results") == []


def test_attachment_without_a_mime_type_gets_one_from_its_name(compat_stack, official, small_ct,
                                                               tmp_path):
    user = compat_stack.user()
    githash = compat_stack.githashes["CompatEcho"]
    ticket_id = user.submit_workspace(small_ct, githash)
    assert _claim_one(official, githash, "compat-3") == ticket_id
    listing = official.dssp_list_ticket_files(ticket_id)
    assert list(listing["index"]) == list(range(len(listing)))
    assert f"ticket_{ticket_id:08d}.itksnap" in set(listing["filename"])
    table = tmp_path / "volumes.csv"
    table.write_text("label,ml\n1,12.5\n")
    official.dssp_attach(ticket_id, "volumes", str(table))
    official.dssp_log(ticket_id, "info", "volumes attached")
    (attachment,) = user.log_attachments(user.log(ticket_id)[-1].id)
    assert attachment.mime_type == "text/csv"
    official.dssp_set_status(ticket_id, "failed")


def test_a_service_the_user_does_not_provide_is_refused(compat_stack, memory_keyring):
    stranger = OfficialClient(compat_stack.url)
    stranger.login(compat_stack.cli("issue-token", "stranger@compat.test"))
    githash = compat_stack.githashes["CompatEcho"]
    assert stranger.dssp_list_services().empty   # an empty body: no services, no error
    for call in (lambda: stranger.dssp_claim_ticket([githash], PROVIDER, "x"),
                 lambda: stranger.dssp_available_services([githash])):
        with pytest.raises(httpx.HTTPStatusError) as error:
            call()
        assert error.value.response.status_code == 401
        assert error.value.response.text == f"You are not a provider for service {githash} "
