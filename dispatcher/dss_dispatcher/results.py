"""What a ticket returns: the result workspace, its preview, and the nodule report."""
from __future__ import annotations

from pathlib import Path

from dss_client.workspace import Workspace

from . import reports
from .preview import write_preview


def build_result(workspace: Workspace, image: Path, label_path: Path, report: dict, output: str,
                 ticket_id: int, workdir: Path):
    """The input workspace plus the new segmentation layer (and nodule landmarks), exported
    as `ticket_%08d_results.itksnap`; returns (files, attachments, summary line), files with
    the workspace first, attachments as (path, description, mime type)."""
    extra = workdir / "attachments"
    extra.mkdir(parents=True, exist_ok=True)
    if output == "lungs":
        labels = reports.LUNG_LABELS
        summary = reports.lung_summary(*reports.lung_volumes_ml(report, label_path))
        workspace.add_segmentation(label_path, "Lungs", labels)
        attachments = []
    else:
        nodules = list(report.get("nodules") or [])
        labels = reports.nodule_labels(nodules)
        summary = reports.nodule_summary(nodules)
        workspace.add_segmentation(label_path, "Nodules", labels)
        workspace.add_landmarks([(f"nodule {i + 1} ({float(n['diameter_mm']):.1f} mm)",
                                  n["center_mm"]) for i, n in enumerate(nodules)])
        json_path, csv_path = reports.write_nodule_report(extra, ticket_id, nodules)
        attachments = [(json_path, "Nodule report (JSON)", "application/json"),
                       (csv_path, "Nodule report (CSV)", "text/csv")]
    preview = write_preview(extra / f"preview_{ticket_id:08d}.png", image, label_path,
                            {value: colour for value, (_, colour) in labels.items()},
                            focus_labels=output == "nodules")
    attachments.insert(0, (preview, "Preview of the segmentation", "image/png"))
    files = workspace.export(workdir / "results", f"ticket_{ticket_id:08d}_results.itksnap")
    return files, attachments, summary
