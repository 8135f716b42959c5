"""What the user reads about a result: label tables, log lines, the nodule report files."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dss_client.imagefiles import read_image

LUNG_LABELS = {1: ("right lung", (230, 80, 80)), 2: ("left lung", (80, 140, 230))}
NODULE_COLOURS = [(255, 215, 0), (255, 120, 0), (220, 40, 200), (0, 200, 160), (160, 255, 60),
                  (0, 170, 255), (255, 90, 140), (140, 110, 255)]
CSV_COLUMNS = ("label", "center_x_mm", "center_y_mm", "center_z_mm", "diameter_mm", "volume_mm3",
               "score")


def nodule_labels(nodules: list[dict]) -> dict[int, tuple[str, tuple[int, int, int]]]:
    return {int(n["label"]): (f"nodule {i + 1}", NODULE_COLOURS[i % len(NODULE_COLOURS)])
            for i, n in enumerate(nodules)}


def lung_volumes_ml(report: dict, label_path: Path) -> tuple[float, float]:
    """(right, left) in ml: from the inference report, else counted in the label image."""
    lungs = report.get("lungs") or {}
    if "right_ml" in lungs and "left_ml" in lungs:
        return float(lungs["right_ml"]), float(lungs["left_ml"])
    image = read_image(label_path)
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    array = sitk.GetArrayViewFromImage(image)
    return float((array == 1).sum() * voxel_ml), float((array == 2).sum() * voxel_ml)


def lung_summary(right_ml: float, left_ml: float) -> str:
    if right_ml + left_ml <= 0:
        return "No lung found in the image: check that it is a chest CT in Hounsfield units."
    return (f"Lung volumes: right {right_ml / 1000:.2f} L, left {left_ml / 1000:.2f} L "
            f"(total {(right_ml + left_ml) / 1000:.2f} L).")


def nodule_summary(nodules: list[dict]) -> str:
    if not nodules:
        return "No nodule found (3-30 mm)."
    sizes = ", ".join(f"nodule {i + 1}: {float(n['diameter_mm']):.1f} mm" for i, n in enumerate(nodules))
    return f"{len(nodules)} nodule{'s' if len(nodules) != 1 else ''} found: {sizes}."


def write_nodule_report(out_dir: Path, ticket_id: int, nodules: list[dict]) -> tuple[Path, Path]:
    """`nodules_%08d.json` (the inference report, names added) and a CSV of the same rows."""
    named = [{"name": f"nodule {i + 1}", **n} for i, n in enumerate(nodules)]
    json_path = out_dir / f"nodules_{ticket_id:08d}.json"
    json_path.write_text(json.dumps({"ticket": ticket_id, "nodules": named}, indent=2))
    csv_path = out_dir / f"nodules_{ticket_id:08d}.csv"
    with open(csv_path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("name",) + CSV_COLUMNS)
        for n in named:
            x, y, z = n["center_mm"]
            writer.writerow((n["name"], n["label"], f"{x:.2f}", f"{y:.2f}", f"{z:.2f}",
                             f"{float(n['diameter_mm']):.2f}", f"{float(n.get('volume_mm3', 0)):.1f}",
                             f"{float(n.get('score', 0)):.3f}"))
    return json_path, csv_path
