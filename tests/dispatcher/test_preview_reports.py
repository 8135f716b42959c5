"""The PNG preview is a valid PNG of the CT with coloured labels; the nodule report files."""
from __future__ import annotations

import csv
import json
import struct
import zlib

import numpy as np
import SimpleITK as sitk

from dss_dispatcher import reports
from dss_dispatcher.preview import representative_slices, write_png, write_preview


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
