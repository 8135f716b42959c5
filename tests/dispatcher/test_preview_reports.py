"""The PNG preview is a valid PNG of the CT with coloured labels, orientation letters, slice
captions and numbered boxes around nodules; the nodule report files."""
from __future__ import annotations

import csv
import json
import struct
import zlib

import numpy as np
import SimpleITK as sitk

from dss_dispatcher import reports
from dss_dispatcher.bitmap_font import text_mask
from dss_dispatcher.preview import representative_slices, write_png, write_preview
from dss_dispatcher.results import build_result

WHITE = (255, 255, 255)
# The chest below: 48 x 40 x 20 voxels of 1 x 1 x 2 mm stored as NIfTI files often are (x and y
# flipped: its first column is the patient's left), world x = 24 - column, y = 20 - row,
# z = -100 + 2 * slice. Preview tiles: 48 mm * 8 = 384 px wide, 40 mm * 8 = 320 px high.
TILE_WIDTH, TILE_HEIGHT, GAP, PX_PER_MM = 384, 320, 4, 8


def _read_png(path):
    """Decode the PNG chunk by chunk, checking signature and CRCs (filter type 0 rows)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind = data[position + 4:position + 8]
        body = data[position + 8:position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length:position + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks[kind] = chunks.get(kind, b"") + body
        position += 12 + length
    width, height, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2) and b"IEND" in chunks
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, 1 + width * 3)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(height, width, 3)


def test_png_round_trip(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    assert (_read_png(write_png(tmp_path / "x.png", rgb)) == rgb).all()


def test_preview_shows_labels_in_their_colours(tmp_path):
    ct = np.full((20, 30, 40), -1000, np.int16)
    labels = np.zeros(ct.shape, np.uint8)
    labels[5:15, 5:25, 3:15] = 1
    labels[5:15, 5:25, 25:37] = 2
    for array, name in ((ct, "ct.nii.gz"), (labels, "seg.nii.gz")):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((1.0, 1.0, 2.0))
        sitk.WriteImage(image, str(tmp_path / name))
    png = write_preview(tmp_path / "p.png", tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz",
                        {1: (255, 0, 0), 2: (0, 0, 255)})
    pixels = _read_png(png).reshape(-1, 3).astype(int)
    reddish = (pixels[:, 0] > 100) & (pixels[:, 2] == 0)
    bluish = (pixels[:, 2] > 100) & (pixels[:, 0] == 0)
    assert reddish.sum() > 100 and bluish.sum() > 100
    assert ((pixels == 0).all(axis=1)).sum() > 100      # air stays black
    assert representative_slices(labels) == [7, 10, 12]


def test_nodule_report_files_and_summaries(tmp_path):
    nodules = [{"center_mm": [1.0, 2.0, 3.0], "diameter_mm": 12.34, "volume_mm3": 980.0,
                "score": 0.9, "label": 1},
               {"center_mm": [-4.0, 5.0, 6.0], "diameter_mm": 5.0, "volume_mm3": 65.4,
                "score": 0.5, "label": 2}]
    json_path, csv_path = reports.write_nodule_report(tmp_path, 17, nodules)
    document = json.loads(json_path.read_text())
    assert document["ticket"] == 17 and document["nodules"][1]["name"] == "nodule 2"
    rows = list(csv.reader(open(csv_path)))
    assert rows[0] == ["name", *reports.CSV_COLUMNS] and rows[1][:3] == ["nodule 1", "1", "1.00"]
    assert reports.nodule_summary(nodules) == "2 nodules found: nodule 1: 12.3 mm, nodule 2: 5.0 mm."
    assert reports.nodule_summary([]) == "No nodule found (3-30 mm)."
    assert reports.lung_summary(2810.0, 2430.0) == \
        "Lung volumes: right 2.81 L, left 2.43 L (total 5.24 L)."
    assert reports.nodule_labels(nodules)[2][0] == "nodule 2"


def _chest(tmp_path, labels_at=()):
    """CT (air; a soft-tissue block in the patient's right; a 0 HU ball per finding) and its
    label image (label n for the n-th (world x, y, z) of `labels_at`)."""
    ct = np.full((20, 40, 48), -1000, np.int16)
    ct[2:18, 10:30, 30:44] = 0                         # world x -6..-19: the patient's right
    labels = np.zeros(ct.shape, np.uint8)
    z, y, x = np.mgrid[:20, :40, :48]
    for value, (wx, wy, wz) in enumerate(labels_at, 1):
        ball = ((24 - x - wx) ** 2 + (20 - y - wy) ** 2 + (-100 + 2 * z - wz) ** 2) <= 9
        ct[ball], labels[ball] = 0, value
    paths = []
    for array, name in ((ct, "ct.nii.gz"), (labels, "seg.nii.gz")):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((1.0, 1.0, 2.0))
        image.SetOrigin((24.0, 20.0, -100.0))
        image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
        sitk.WriteImage(image, str(tmp_path / name))
        paths.append(tmp_path / name)
    return paths


def _find(rgb, text, colour=WHITE):
    """(row, column) of each place where `text` is drawn in `colour` (2x2 font pixels)."""
    mask = np.pad(text_mask(text, 2), 2)
    lit = (rgb == colour).all(axis=-1)
    offset = np.argwhere(mask)[0]
    hits = []
    for row, col in np.argwhere(lit) - offset:
        window = lit[max(row, 0):row + mask.shape[0], max(col, 0):col + mask.shape[1]]
        if row >= 0 and col >= 0 and window.shape == mask.shape and (window == mask).all():
            hits.append((int(row) + 2, int(col) + 2))
    return hits


def _tile(rgb, number):
    left = number * (TILE_WIDTH + GAP)
    return rgb[:, left:left + TILE_WIDTH]


def _display(world_x, world_y):
    """Pixel (row, column) in a tile of a world point: the LPS-oriented column is x + 23."""
    return (world_y + 19.5) * PX_PER_MM - 0.5, (world_x + 23.5) * PX_PER_MM - 0.5


def test_orientation_letters_and_slice_captions(tmp_path):
    ct_path, seg_path = _chest(tmp_path)
    rgb = _read_png(write_preview(tmp_path / "p.png", ct_path, seg_path, {}))
    assert representative_slices(np.zeros((20, 1, 1))) == [5, 10, 14]
    for number, caption in enumerate(("AXIAL 6/20, Z = -90.0 MM", "AXIAL 11/20, Z = -80.0 MM",
                                      "AXIAL 15/20, Z = -72.0 MM")):
        tile = _tile(rgb, number)
        image = tile[:TILE_HEIGHT]                          # above the caption
        (r_row, r_col), = _find(image, "R")
        (l_row, l_col), = _find(image, "L")
        (a_row, a_col), = _find(image, "A")
        (p_row, p_col), = _find(image, "P")
        assert r_col < 20 and l_col > TILE_WIDTH - 20 and r_row == l_row
        assert a_row < 20 and TILE_HEIGHT - 20 < p_row < TILE_HEIGHT and a_col == p_col
        (caption_row, caption_col), = _find(tile, caption)
        assert caption_row > TILE_HEIGHT and caption_col < 10
        tissue_cols = np.flatnonzero((image == 182).all(axis=-1).any(axis=0))
        assert tissue_cols.max() < TILE_WIDTH / 2, "the patient's right is on the R side"


def test_nodules_are_boxed_and_numbered_in_their_slices_best_first(tmp_path):
    first, second = (8.0, 0.0, -80.0), (-10.0, 5.0, -90.0)     # slices 10 and 5
    ct_path, seg_path = _chest(tmp_path, (first, second))
    nodules = [{"center_mm": list(centre), "diameter_mm": 6.0, "volume_mm3": 113.0,
                "score": score, "label": label}
               for label, (centre, score) in enumerate(((first, 0.9), (second, 0.4)), 1)]
    build_result("nodules", ct_path, seg_path, {"nodules": nodules}, 7, tmp_path)
    rgb = _read_png(tmp_path / "preview_00000007.png")
    assert rgb.shape[1] == 2 * TILE_WIDTH + GAP, "one tile per nodule slice"
    colours = [reports.NODULE_COLOURS[0], reports.NODULE_COLOURS[1]]
    for number, (centre, colour, other) in enumerate(zip((first, second), colours, colours[::-1])):
        tile = _tile(rgb, number)
        slice_number = (centre[2] + 100) / 2 + 1
        assert _find(tile, f"AXIAL {slice_number:.0f}/20, Z = {centre[2]:.1f} MM")
        marker = (tile == colour).all(axis=-1)
        row, col = (int(round(v)) for v in _display(*centre[:2]))
        assert not marker[row, col]
        assert marker[row, :col].any() and marker[row, col:].any()
        assert marker[:row, col].any() and marker[row:, col].any()
        assert _find(tile, str(number + 1), colour), "numbered as in the report"
        assert not (tile == other).all(axis=-1).any(), "the other nodule is in another slice"


def test_lungs_preview_has_no_finding_markers(tmp_path):
    ct_path, seg_path = _chest(tmp_path, ((-10.0, 0.0, -80.0), (10.0, 0.0, -80.0)))
    result = build_result("lungs", ct_path, seg_path, {"lungs": {"right_ml": 1.0, "left_ml": 1.0}},
                          8, tmp_path)
    assert result.summary.startswith("Lung volumes")
    rgb = _read_png(tmp_path / "preview_00000008.png")
    assert rgb.shape[1] == TILE_WIDTH, "the labels span slices 9-11: one tile, their middle"
    assert _find(rgb, "AXIAL 11/20, Z = -80.0 MM") and _find(rgb[:TILE_HEIGHT], "R")
    pixels = rgb.reshape(-1, 3)
    blended = (pixels != pixels[:, :1]).any(axis=1)
    assert blended.sum() > 100, "the lungs are shown in colour"
    for colour in [c for _, c in reports.LUNG_LABELS.values()] + reports.NODULE_COLOURS:
        assert not (pixels == colour).all(axis=1).any(), "no marker in a label colour"
