"""`dss demo` against the real web server, with a provider thread standing in for the dispatcher."""
import functools
import json
import threading

import pytest

from client_cli import one_line_error, run_dss
from client_stack import PROVIDER, drain_ready
from dss_client import DSSClient
from dss_client.phantom import make_phantom
from dss_client.workspace import Workspace


@functools.cache
def truth():
    """The nodules of the phantom dss demo submits; the provider "finds" the first one."""
    return make_phantom().nodules


def _serve_tickets(stack, count: int, work_dir, fail: bool = False):
    with DSSClient(stack.url) as provider:
        provider.login(stack.provider_token)
        for _ in range(count):
            claim = provider.claim([stack.service_githash], PROVIDER, wait=60)
            ticket_id = claim.ticket_id
            if fail:
                provider.log_message(ticket_id, "error", "No lungs found in the image")
                provider.set_status(ticket_id, "failed")
                continue
            inputs = provider.provider_download(ticket_id, work_dir / f"in{ticket_id}")
            workspace = Workspace.load(next(p for p in inputs if p.suffix == ".itksnap"))
            workspace.add_segmentation(workspace.main_layer().path, "Lungs")
            report = work_dir / f"nodules{ticket_id}.json"
            report.write_text(json.dumps({"nodules": [{"center_mm": truth()[0].center_mm},
                                                      {"center_mm": [999.0, 999.0, 999.0]}]}))
            provider.attach(ticket_id, report, "Nodule report (JSON)", "application/json")
            provider.log_message(ticket_id, "info", f"Lung volumes: right 2.1 L (ticket {ticket_id})")
            for file in workspace.export(work_dir / f"out{ticket_id}", f"ticket_{ticket_id:08d}_results"):
                provider.upload_result(ticket_id, file)
            provider.set_status(ticket_id, "success")


def _login(stack, tmp_path, email):
    drain_ready(stack)
    config = tmp_path / "dss.json"
    assert run_dss(config, "login", stack.url, "--token", stack.new_token(email)).returncode == 0
    return config


@pytest.mark.slow  # makes the phantom and waits for two tickets in a subprocess
def test_demo_submits_the_phantom_waits_downloads_and_reports(stack, tmp_path):
    config = _login(stack, tmp_path, "demo@example.org")
    provider = threading.Thread(target=_serve_tickets, args=(stack, 2, tmp_path / "provider"))
    provider.start()
    out = tmp_path / "demo"
    result = run_dss(config, "demo", "--out", str(out), "--segmentation-service", stack.service_name,
                     "--nodule-service", stack.service_githash)
    provider.join(60)
    assert result.returncode == 0, result.stderr
    assert (out / "phantom_chest_ct.nii.gz").is_file()
    assert "truth: right lung" in result.stdout and "6 nodules" in result.stdout
    workspaces = sorted(out.rglob("*_results.itksnap"))
    assert len(workspaces) == 2
    for workspace in workspaces:
        assert str(workspace) in result.stdout
        assert [layer.role for layer in Workspace.load(workspace).layers] == ["MainRole", "SegmentationRole"]
    assert result.stdout.count("Lung volumes: right 2.1 L") == 2
    assert "layer SegmentationRole 'Lungs'" in result.stdout
    missed = ", ".join(f"{nodule.diameter_mm:g} mm" for nodule in truth()[1:])
    assert result.stdout.count(f"against the phantom's truth: found 1 of {len(truth())} nodules "
                               f"(missed {missed}), 1 false positive\n") == 2
    assert "100% success" in result.stderr


def test_demo_failure_is_one_line_with_the_providers_reason(stack, tmp_path):
    config = _login(stack, tmp_path, "demo-fail@example.org")
    provider = threading.Thread(target=_serve_tickets, args=(stack, 2, tmp_path, True))
    provider.start()
    result = run_dss(config, "demo", "--out", str(tmp_path / "demo"), "--segmentation-service",
                     stack.service_name, "--nodule-service", stack.service_name)
    provider.join(60)
    line = one_line_error(result, after_progress=True)
    assert "failed (No lungs found in the image)" in line
