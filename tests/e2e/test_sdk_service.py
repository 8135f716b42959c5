"""A service written with the provider SDK, end to end, all real processes: an administrator
registers services/example-threshold with `dss serve --register`, `dss serve` serves it with a
provider token, and a user submits a CT with dss_client and downloads the result workspace with
the new, named label layer; a ticket submitted with the service's parameter follows it."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dss_client.workspace import Workspace
from helpers import PYTHON, REPO_ROOT, ServerProcess, free_port, wait_for_status

pytestmark = pytest.mark.slow
EXAMPLE = REPO_ROOT / "services" / "example-threshold" / "threshold.py"
DSS = str(Path(PYTHON).parent / "dss")
SDK_PROVIDER = "sdk-lab"


def provider_env(stack, token: str, name: str) -> dict[str, str]:
    return {"SERVER_URL": stack.server_url, "DSS_PROVIDER_TOKEN": token,
            "DSS_PROVIDER_NAME": SDK_PROVIDER, "DSS_PROVIDER_CODE": name,
            "DSS_METRICS_PORT": str(free_port()), "DSS_WORK_DIR": str(stack.tmp / f"work-{name}"),
            "DSS_CLAIM_WAIT": "2", "DSS_POLL_INTERVAL": "0.5", "DSS_RETRY_BUDGET": "5",
            "DSS_CONFIG": str(stack.tmp / "dss-admin.json")}


def dss(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([DSS, *args], env={**os.environ, **env}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_an_sdk_service_registers_itself_and_returns_a_label_layer(stack, phantom_ct, tmp_path):
    ct_path, _ = phantom_ct
    user = stack.user()
    env = provider_env(stack, stack.cli("issue-token", "sdk-robot@e2e.test", "--reusable"), "sdk")
    dss(env, "login", stack.server_url, "--token", stack.cli("create-admin", "sdk-admin@e2e.test"))
    assert "registered ExampleThreshold 1.1.0 for sdk-lab" in dss(env, "serve", "--register",
                                                                   f"{EXAMPLE}:run")
    assert "already registered" in dss(env, "serve", "--register", f"{EXAMPLE}:run")
    stack.processes.append(ServerProcess(
        [DSS, "serve", f"{EXAMPLE}:run"], env,
        f"http://127.0.0.1:{env['DSS_METRICS_PORT']}/healthz", stack.tmp / "serve-sdk.log"))

    ticket = user.submit_workspace(ct_path, "ExampleThreshold")
    workspace = result_workspace(user, ticket, tmp_path / "result")
    assert [each.role for each in workspace.layers] == ["MainRole", "SegmentationRole"]
    assert workspace.label_table()[1] == ("bright", (255, 200, 0))
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(ct_path)))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(workspace.layers[1].path)))
    np.testing.assert_array_equal(mask, (ct > ct.mean()).astype(mask.dtype))

    messages = [e.message for e in user.log(ticket)]
    assert "Thresholding at the mean intensity" in messages, "ctx.progress's stage is logged"
    assert messages[-1] == f"{int((ct > ct.mean()).sum())} voxels above {ct.mean():.1f}."
    (report,) = user.download_attachments(ticket, tmp_path / "attachments")
    assert json.loads(report.read_text())["voxels"] == int(mask.sum())

    offset = float(ct.std())
    with_offset = user.submit_workspace(ct_path, "ExampleThreshold", parameters={"offset": offset})
    workspace = result_workspace(user, with_offset, tmp_path / "offset")
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(workspace.layers[1].path)))
    np.testing.assert_array_equal(mask, (ct > ct.mean() + offset).astype(mask.dtype))
    assert 0 < mask.sum() < (ct > ct.mean()).sum(), "the parameter changed the result"


def result_workspace(user, ticket: int, folder: Path) -> Workspace:
    """The successful ticket's result workspace, downloaded and checked as ITK-SNAP would."""
    assert wait_for_status(user, ticket, {"success", "failed"}) == "success", \
        [e.message for e in user.log(ticket)]
    paths = user.download(ticket, "results", folder)
    (workspace_path,) = [p for p in paths if p.suffix == ".itksnap"]
    workspace = Workspace.load(workspace_path)
    workspace.validate()
    return workspace
