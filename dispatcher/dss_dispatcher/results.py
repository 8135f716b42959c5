"""What a lung ticket returns: the new segmentation layer, nodule landmarks, the preview and
the nodule report, as the SDK's Result."""
from __future__ import annotations

from pathlib import Path

from dss_client.sdk import Result

from . import reports
from .preview import Finding, write_preview


def build_result(output: str, image: Path, label_path: Path, report: dict, ticket_id: int,
                 folder: Path) -> Result:
    """The label image (labels named and coloured: right/left lung, or nodule 1..n, nodules
    also as landmarks), a PNG preview (nodules boxed and numbered) and, for nodules, the
    report as JSON and CSV."""
    findings = []
    if output == "lungs":
        labels = reports.LUNG_LABELS
        result = Result(reports.lung_summary(*reports.lung_volumes_ml(report, label_path)))
        result.add_segmentation(label_path, labels, "Lungs")
    else:
        nodules = list(report.get("nodules") or [])
        labels = reports.nodule_labels(nodules)
        result = Result(reports.nodule_summary(nodules))
        result.add_segmentation(label_path, labels, "Nodules")
        for number, nodule in enumerate(nodules, 1):
            result.add_landmark(f"nodule {number} ({float(nodule['diameter_mm']):.1f} mm)",
                                nodule["center_mm"])
        findings = [Finding(tuple(n["center_mm"]), float(n["diameter_mm"]),
                            labels[int(n["label"])][1]) for n in nodules]
    preview = write_preview(folder / f"preview_{ticket_id:08d}.png", image, label_path,
                            {value: colour for value, (_, colour) in labels.items()}, findings)
    result.add_attachment(preview, "Preview of the segmentation", "image/png")
    if output == "nodules":
        json_path, csv_path = reports.write_nodule_report(folder, ticket_id, nodules)
        result.add_attachment(json_path, "Nodule report (JSON)", "application/json")
        result.add_attachment(csv_path, "Nodule report (CSV)", "text/csv")
    return result
