"""`dss demo`: a synthetic chest CT through both lung services, end to end, with what came back.

A fresh clone has no CT of its own, so the phantom generator (`phantom`) makes one.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .api import DSSClient
from .phantom import detection_matches, make_phantom, write_phantom
from .terminal import CLIError, ProgressBar, wait_for_ticket

PHANTOM_NAME = "phantom_chest_ct.nii.gz"


def _write_phantom(out_dir: Path):
    """Write the phantom CT and print its truth, to compare with what the services find."""
    phantom = make_phantom()
    path = out_dir / PHANTOM_NAME
    write_phantom(path, phantom)
    litres_per_voxel = float(np.prod(phantom.spacing)) / 1e6
    right, left = ((phantom.lungs == label).sum() * litres_per_voxel for label in (1, 2))
    print(f"phantom chest CT: {path}")
    print(f"  truth: right lung {right:.2f} l, left lung {left:.2f} l, "
          f"{len(phantom.nodules)} nodules of " +
          ", ".join(f"{nodule.diameter_mm:g}" for nodule in phantom.nodules) + " mm")
    return path, phantom


def compare_with_truth(findings: list[dict], nodules) -> str:
    """'found k of n nodules (...), m false positives' for a nodule report against the truth."""
    found = [n for n in nodules if any(detection_matches(f["center_mm"], n) for f in findings)]
    false = [f for f in findings if not any(detection_matches(f["center_mm"], n) for n in nodules)]
    missed = [n for n in nodules if n not in found]
    return (f"found {len(found)} of {len(nodules)} nodules" +
            (f" (missed {', '.join(f'{n.diameter_mm:g} mm' for n in missed)})" if missed else "") +
            f", {len(false)} false positive{'s' if len(false) != 1 else ''}")


def _nodule_findings(paths: list[Path]) -> list[dict] | None:
    """The findings of the nodule report among the downloaded attachments, if there is one."""
    for path in paths:
        if path.suffix == ".json":
            report = json.loads(path.read_text())
            if isinstance(report, dict) and isinstance(report.get("nodules"), list):
                return report["nodules"]
    return None


def _describe_workspace(paths: list[Path]) -> list[str]:
    """One line per layer of the downloaded result workspace (role, nickname, file)."""
    from .workspace import Workspace

    lines = []
    for path in paths:
        if path.suffix == ".itksnap":
            for layer in Workspace.load(path).layers:
                name = f" '{layer.nickname}'" if layer.nickname else ""
                lines.append(f"  layer {layer.role}{name}: {Path(layer.path).name}")
    return lines


def _report(service: str, ticket_id: int, log: list[dict], paths: list[Path], phantom) -> None:
    print(f"\n{service} (ticket {ticket_id}): success")
    for path in paths:
        print(f"  {path}")
    print("\n".join(_describe_workspace(paths)))
    for entry in log:
        print(f"  [{entry['category']}] {entry['message']}")
        for attachment in entry.get("attachments", []):
            print(f"    @ {attachment['url']} : {attachment['description']}")
    findings = _nodule_findings(paths)
    if findings is not None:
        print(f"  against the phantom's truth: {compare_with_truth(findings, phantom.nodules)}")


def run_demo(client: DSSClient, out_dir: Path, segmentation_service: str,
             nodule_service: str) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    image, phantom = _write_phantom(out_dir)
    tickets = {service: client.submit_workspace(image, service)
               for service in (segmentation_service, nodule_service)}
    for service, ticket_id in tickets.items():
        print(f"submitted ticket {ticket_id} to {service}", flush=True)
    failed = []
    for service, ticket_id in tickets.items():
        status, log = wait_for_ticket(client, ticket_id, ProgressBar(f"{service} #{ticket_id}"),
                                      echo_log=False)  # the summary prints the whole log
        if status != "success":
            errors = [entry["message"] for entry in log if entry["category"] == "error"]
            failed.append(f"{service} ticket {ticket_id} {status}" +
                          (f" ({errors[-1]})" if errors else ""))
            continue
        paths = client.download(ticket_id, "results", out_dir / service)
        paths += client.download_attachments(ticket_id, out_dir / service / "attachments")
        _report(service, ticket_id, log, paths, phantom)
    if failed:
        raise CLIError("; ".join(failed))
    return 0
