"""What a service returns: new layers, landmarks, reports and attachments, written by the SDK
into the result workspace (the input workspace plus these, exported like `itksnap-wt`)."""
from __future__ import annotations

import csv
import json
import mimetypes
from pathlib import Path

from ..imagefiles import read_image
from ..workspace import Workspace

Labels = dict[int, tuple[str, tuple[int, int, int]]]


class Result:
    def __init__(self, summary: str = ""):
        self.summary = summary   # the ticket's last log line, which shows the attachments
        self._layers: list[tuple[object, str, str, Labels | tuple[str, ...]]] = []
        self._landmarks: list[tuple[str, tuple[float, float, float]]] = []
        self._reports: list[tuple[str, object, str]] = []
        self._attachments: list[tuple[Path, str, str]] = []

    def add_segmentation(self, image, labels: Labels | None = None, name: str = "Segmentation"):
        """A new label layer: a numpy array shaped like the input image (z, y, x), a SimpleITK
        image or an image file; labels {value: (name, (r, g, b))} go into ITK-SNAP's table."""
        self._layers.append((image, "SegmentationRole", name, labels or {}))
        return self

    def add_image(self, image, name: str = "", tags: tuple[str, ...] = ()):
        """A new image layer (overlay), given like add_segmentation's."""
        self._layers.append((image, "OverlayRole", name, tuple(tags)))
        return self

    def add_landmark(self, text: str, point_mm) -> "Result":
        """An ITK-SNAP landmark at a physical point (x, y, z in mm, LPS like ITK)."""
        x, y, z = point_mm
        self._landmarks.append((text, (float(x), float(y), float(z))))
        return self

    def add_report(self, file_name: str, data, description: str = "") -> "Result":
        """An attached report: `.json` (any JSON value) or `.csv` (a list of rows, the first
        the header)."""
        if Path(file_name).suffix not in (".json", ".csv") or Path(file_name).name != file_name:
            raise ValueError(f"a report is a plain .json or .csv file name, not {file_name!r}")
        self._reports.append((file_name, data, description or f"Report ({file_name})"))
        return self

    def add_attachment(self, path, description: str, mime: str | None = None) -> "Result":
        """A file shown with the ticket's last log line (a PNG preview, a PDF...)."""
        path = Path(path)
        self._attachments.append((path, description, mime or _mime(path)))
        return self

    def write(self, workspace: Workspace, image: Path, workdir: Path, ticket_id: int):
        """The result workspace `ticket_%08d_results.itksnap` and the attachments; returns
        (files, attachments, summary), files with the workspace first, attachments as
        (path, description, mime type)."""
        layers = workdir / "layers"
        layers.mkdir(parents=True, exist_ok=True)
        for number, (source, role, name, extra) in enumerate(self._layers):
            path = _image_file(source, image, layers / f"layer_{number}.nii.gz")
            if role == "SegmentationRole":
                workspace.add_segmentation(path, name, extra)
            else:
                workspace.add_layer(path, role, name, extra)
        if self._landmarks:
            workspace.add_landmarks(self._landmarks)
        # the values were this service's: another service the result is submitted to would
        # refuse the names it does not declare (the scan's name stays)
        workspace.parameters = {}
        files = workspace.export(workdir / "results", f"ticket_{ticket_id:08d}_results.itksnap")
        reports = [(_write_report(workdir / "reports", name, data), description, _mime(Path(name)))
                   for name, data, description in self._reports]
        summary = self.summary or f"Done: {len(self._layers)} new layer(s)."
        return files, self._attachments + reports, summary


def _image_file(source, reference: Path, target: Path) -> Path:
    """`source` as an image file; an array takes the geometry of the input image."""
    if isinstance(source, (str, Path)):
        return Path(source)
    import SimpleITK as sitk

    if not isinstance(source, sitk.Image):
        import numpy

        geometry = read_image(reference)
        array = numpy.asarray(source)
        source = sitk.GetImageFromArray(array.astype(numpy.uint8) if array.dtype == bool else array)
        if source.GetSize() != geometry.GetSize():
            raise ValueError(f"a layer of size {source.GetSize()} does not match the input "
                             f"image's {geometry.GetSize()} (arrays are indexed z, y, x)")
        source.CopyInformation(geometry)
    sitk.WriteImage(source, str(target), useCompression=True)
    return target


def _write_report(folder: Path, name: str, data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if path.suffix == ".json":
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    else:
        with open(path, "w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows(data)
    return path


def _mime(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"
