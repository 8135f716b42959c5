"""ITK-SNAP workspaces (`.itksnap` registry files): read, edit, save and export like ITK-SNAP.

The file format is in `workspace_format`, the checks of layer images in `workspace_images`.
"""
from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import imagefiles
from .workspace_format import WORKSPACE_VERSION, Registry, WorkspaceError
from .workspace_images import header_image, read_header, read_layer, require_volume

ROLES = ("MainRole", "OverlayRole", "SegmentationRole")
LAYER_KEY = re.compile(r"^Layer\[(\d{3,})\]$")
EXPORTED_NAME = re.compile(r"^layer_\d{3}_([0-9a-f]{32})\.nii\.gz$")
PARAMETERS = "DSS.Parameters"
SCAN_NAME = "DSS.ScanName"
MAX_WORKSPACE_BYTES = 16 * 1024 * 1024  # a real workspace is a few KB; refuse anything absurd


def _parameter_text(value) -> str:
    """A value as the server reads it: booleans as true/false (not Python's True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _split_tags(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


@dataclass(frozen=True)
class Layer:
    key: str            # "Layers.Layer[000]"
    role: str           # MainRole | OverlayRole | SegmentationRole
    path: Path          # where the file actually is (moved-workspace rule applied)
    tags: tuple[str, ...]
    nickname: str


@dataclass(frozen=True)
class Landmark:
    text: str
    position: tuple[float, ...]   # ITK-SNAP image coordinates (voxel i spans [i, i+1))


class Workspace:
    """An ITK-SNAP workspace held in memory; `path` is where it was read from (or None)."""

    def __init__(self, registry: Registry, path: Path | None = None):
        self.registry = registry
        self.path = path

    # ----- reading
    @classmethod
    def load(cls, path) -> "Workspace":
        path = Path(path).resolve()
        if path.stat().st_size > MAX_WORKSPACE_BYTES:
            raise WorkspaceError(f"{path.name} is too large to be a workspace")
        registry = Registry.from_xml(path.read_bytes())
        # ITK-SNAP's loader reads a file without Version as the current format (the official
        # itksnap-dss library writes none); only SaveLocation is needed for its layer paths
        if registry.get("SaveLocation") is None:
            raise WorkspaceError(f"{path.name} is not an ITK-SNAP workspace (no SaveLocation entry)")
        return cls(registry, path)

    @classmethod
    def load_received(cls, path) -> "Workspace":
        """A workspace received from someone else (a ticket's input on the dispatcher): each
        layer may only name a file in the workspace's own folder, found as ITK-SNAP would (the
        stored path, the moved-workspace rule) or by file name. A layer naming anything else
        points at a missing file in that folder, never at a file elsewhere on this host."""
        workspace = cls.load(path)
        assert workspace.path is not None  # load() sets it
        folder = workspace.path.parent
        save_location = workspace.registry.get("SaveLocation", "") or "/"
        for number in workspace._layer_numbers():
            key = f"Layers.Layer[{number:03d}].AbsolutePath"
            stored = workspace.registry.get(key, "") or ""
            workspace.registry.set(key, str(_file_in_folder(stored, save_location, folder)))
        workspace.registry.set("SaveLocation", str(folder))   # the paths above are final
        return workspace

    def _layer_numbers(self) -> list[int]:
        if not self.registry.has_folder("Layers"):
            return []
        found = (LAYER_KEY.match(k) for k in self.registry.folder("Layers").folders)
        return sorted(int(m.group(1)) for m in found if m)

    def actual_path(self, stored: str) -> Path:
        """ITK-SNAP's moved-workspace rule (`WorkspaceAPI::GetLayerActualPath`)."""
        if self.path is None:
            return Path(stored)
        save_location = self.registry.get("SaveLocation", "")
        project_dir = str(self.path.parent)
        if save_location != project_dir and stored:
            relative = os.path.relpath(stored, save_location or "/")
            moved = Path(os.path.normpath(os.path.join(project_dir, relative)))
            if moved.is_file():
                return moved
        return Path(stored)

    @property
    def layers(self) -> list[Layer]:
        result = []
        for number in self._layer_numbers():
            key = f"Layers.Layer[{number:03d}]"
            folder = self.registry.folder(key)
            tags = _split_tags(folder.entries.get("Tags"))
            tags += [t for t in _split_tags(folder.get("LayerMetaData.Tags")) if t not in tags]
            result.append(Layer(key, folder.entries.get("Role", ""),
                                self.actual_path(folder.entries.get("AbsolutePath", "")),
                                tuple(tags), folder.get("LayerMetaData.CustomNickName", "") or ""))
        return result

    def main_layer(self) -> Layer:
        for layer in self.layers:
            if layer.role == "MainRole":
                return layer
        raise WorkspaceError("the workspace has no main image layer (Role MainRole)")

    def find_layer(self, tag: str | None = None) -> Layer:
        """The first image layer carrying `tag`; the main layer when untagged or not found."""
        if tag:
            for layer in self.layers:
                if layer.role != "SegmentationRole" and tag in layer.tags:
                    return layer
        return self.main_layer()

    def validate(self) -> None:
        """The checks ITK-SNAP's loader makes (`IRISApplication::OpenProject`)."""
        layers = self.layers
        if not layers or layers[0].key != "Layers.Layer[000]" or layers[0].role != "MainRole":
            raise WorkspaceError("Layer 0 in a project must be of type 'Main Image'")
        for index, layer in enumerate(layers):
            if layer.key != f"Layers.Layer[{index:03d}]":
                raise WorkspaceError(f"layer keys are not contiguous at {layer.key}")
            if layer.role not in ROLES:
                raise WorkspaceError(f"Layer {index} has an unrecognized type {layer.role!r}")
            if index and layer.role == "MainRole":
                raise WorkspaceError(f"Layer {index} in a project may not be of type 'Main Image'")
            if not layer.path.is_file():
                raise WorkspaceError(f"The image file in Layer {index} ({layer.path}) does not exist")

    # ----- the DSS folder: per-ticket parameters and the scan's name (ITK-SNAP ignores it)
    @property
    def parameters(self) -> dict[str, str]:
        """The service parameters stored for submission (`DSS` > `Parameters` entries)."""
        if not self.registry.has_folder(PARAMETERS):
            return {}
        return dict(self.registry.folder(PARAMETERS).entries)

    @parameters.setter
    def parameters(self, values: dict) -> None:
        self.registry.remove_folder(PARAMETERS)
        for name, value in values.items():
            self.registry.folder(PARAMETERS).set(name, _parameter_text(value))

    @property
    def scan_name(self) -> str:
        """The scan's original file name (`DSS` > `ScanName`), kept across exports."""
        return self.registry.get(SCAN_NAME, "") or ""

    @scan_name.setter
    def scan_name(self, name: str) -> None:
        self.registry.set(SCAN_NAME, name)

    # ----- label table and annotations
    def label_table(self) -> dict[int, tuple[str, tuple[int, ...]]]:
        """{label value: (name, (r, g, b))} from the main layer's `ProjectMetaData.IRIS.LabelTable`."""
        key = f"{self.main_layer().key}.ProjectMetaData.IRIS.LabelTable"
        if not self.registry.has_folder(key):
            return {}
        table = {}
        for element in self.registry.folder(key).folders.values():
            colour = tuple(int(v) for v in element.entries.get("Color", "0 0 0").split())
            table[int(element.entries["Index"])] = (element.entries.get("Label", ""), colour)
        return table

    def set_labels(self, labels: dict[int, tuple[str, tuple[int, int, int]]]) -> None:
        """Name and colour labels, keeping the other labels already in the table."""
        key = f"{self.main_layer().key}.ProjectMetaData.IRIS.LabelTable"
        merged = {**self.label_table(), **labels}
        self.registry.remove_folder(key)
        table = self.registry.folder(key)
        table.set("NumberOfElements", len(merged))
        for position, value in enumerate(sorted(merged)):
            name, (r, g, b) = merged[value]
            element = table.folder(f"Element[{position}]")
            for entry, text in (("Alpha", 255), ("Color", f"{r} {g} {b}"), ("Flags", "1 1"),
                                ("Index", value), ("Label", name)):
                element.set(entry, text)

    @property
    def landmarks(self) -> list[Landmark]:
        if not self.registry.has_folder("Annotations.Annotations"):
            return []
        folder = self.registry.folder("Annotations.Annotations")
        result = []
        for index in range(int(folder.entries.get("ArraySize", "0"))):
            element = folder.folder(f"Element[{index}]")
            if element.entries.get("Type") == "LandmarkAnnotation":
                position = tuple(float(v) for v in element.entries["Pos"].split())
                result.append(Landmark(element.entries.get("Text", ""), position))
        return result

    def add_landmarks(self, points, colour=(1.0, 1.0, 0.0)) -> None:
        """Add ITK-SNAP point landmarks `[(text, (x, y, z) in physical mm, LPS)]`.

        ITK-SNAP keeps annotation positions in its image coordinates, where voxel i spans
        [i, i+1), so the main image's header converts them."""
        image = read_header(self.main_layer().path)
        annotations = self.registry.folder("Annotations")
        annotations.set("Format", "ITK-SNAP Annotation File")
        annotations.set("FormatDate", "20150624")
        array = annotations.folder("Annotations")
        start = int(array.entries.get("ArraySize", "0"))
        for offset, (text, point_mm) in enumerate(points):
            index = image.TransformPhysicalPointToContinuousIndex([float(v) for v in point_mm])
            element = array.folder(f"Element[{start + offset}]")
            for entry, value in (("Color", " ".join(f"{c:g}" for c in colour)), ("Offset", "0 0"),
                                 ("Plane", 2), ("Pos", " ".join(f"{i + 0.5:g}" for i in index)),
                                 ("Selected", 0), ("Tags", ""), ("Text", text),
                                 ("Type", "LandmarkAnnotation"), ("VisibleInAllPlanes", 1),
                                 ("VisibleInAllSlices", 0)):
                element.set(entry, value)
        array.set("ArraySize", start + len(points))

    def check_layer_files(self) -> list:
        """Every layer's header, read as `imagefiles` allows (voxels unread); a WorkspaceError
        names the first layer refused by number and file name."""
        headers = []
        for index, layer in enumerate(self.layers):
            if not layer.path.is_file():
                raise WorkspaceError(self._missing_layer(index, layer))
            headers.append(read_layer(index, layer, imagefiles.read_information))
        return headers

    def check_images(self) -> None:
        """Every layer's header reads as a 3-D image ITK accepts (a WorkspaceError says which
        does not)."""
        for layer, header in zip(self.layers, self.check_layer_files()):
            require_volume(header, layer.path)
            header_image(header, layer.path)

    def _missing_layer(self, index: int, layer: Layer) -> str:
        """Where a layer's file was looked for, in the user's terms (not the stored path, which
        may be a folder of another machine)."""
        if self.path is None:
            return f"layer {index}: no such file: {layer.path}"
        return (f"layer {index} ({layer.path.name}) was not found next to {self.path} "
                "(nor at the path stored in it)")

    def landmark_point_mm(self, landmark: Landmark) -> tuple[float, float, float]:
        image = read_header(self.main_layer().path)
        return tuple(image.TransformContinuousIndexToPhysicalPoint([p - 0.5 for p in landmark.position]))

    # ----- writing
    def next_layer_key(self) -> str:
        """The next free `Layers.Layer[NNN]` key; an existing layer is never overwritten."""
        numbers = self._layer_numbers()
        return f"Layers.Layer[{(numbers[-1] + 1) if numbers else 0:03d}]"

    def add_layer(self, path, role: str, nickname: str = "", tags=()) -> str:
        if role not in ROLES:
            raise WorkspaceError(f"unknown layer role {role!r}")
        key = self.next_layer_key()
        folder = self.registry.folder(key)
        folder.set("AbsolutePath", str(Path(path).resolve()))
        folder.set("Role", role)
        folder.set("Tags", ",".join(tags))
        meta = folder.folder("LayerMetaData")
        for entry, value in (("Alpha", 255), ("CustomNickName", nickname),
                             ("Sticky", 1 if role == "SegmentationRole" else 0),
                             ("Tags", ",".join(tags))):
            meta.set(entry, value)
        return key

    def add_segmentation(self, path, nickname: str, labels=None) -> str:
        """A new segmentation layer under the next free key, its labels named and coloured."""
        key = self.add_layer(path, "SegmentationRole", nickname)
        if labels:
            self.set_labels(labels)
        return key

    @classmethod
    def for_image(cls, image_path) -> "Workspace":
        """A new workspace whose main layer is `image_path`."""
        workspace = cls(Registry())
        workspace.add_layer(image_path, "MainRole")
        return workspace

    def save(self, path) -> Path:
        """Write like ITK-SNAP: absolute layer paths, `SaveLocation` = the file's directory."""
        path = Path(path).resolve()
        registry = copy.deepcopy(self.registry)
        for layer in self.layers:
            registry.set(f"{layer.key}.AbsolutePath", str(layer.path.resolve()))
        registry.set("SaveLocation", str(path.parent))
        registry.set("Version", WORKSPACE_VERSION)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".part")
        temporary.write_text(registry.to_xml(), encoding="utf-8")
        os.replace(temporary, path)   # never leave a half-written workspace behind
        self.registry, self.path = registry, path
        return path

    def export(self, out_dir, name: str) -> list[Path]:
        """Like `itksnap-wt` export: every image layer re-saved as
        `layer_%03d_<md5 of voxel data>.nii.gz`, IOHints cleared, the workspace saved as `name`.
        Returns the workspace path first, then the layer files."""
        import SimpleITK as sitk

        out_dir = Path(out_dir).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        exported = Workspace(copy.deepcopy(self.registry), self.path)
        files = []
        for index, layer in enumerate(self.layers):
            image = read_layer(index, layer, imagefiles.read_image)
            digest = hashlib.md5(sitk.GetArrayViewFromImage(image).tobytes()).hexdigest()
            target = out_dir / f"layer_{index:03d}_{digest}.nii.gz"
            exported_before = EXPORTED_NAME.match(layer.path.name)
            if exported_before and exported_before.group(1) == digest:
                shutil.copyfile(layer.path, target)   # already written by an export: no re-compression
            else:
                sitk.WriteImage(image, str(target), useCompression=True)
            exported.registry.set(f"{layer.key}.AbsolutePath", str(target))
            exported.registry.remove_folder(f"{layer.key}.IOHints")
            files.append(target)
        exported.path = None   # paths are now absolute in out_dir
        name = name if name.endswith(".itksnap") else name + ".itksnap"
        return [exported.save(out_dir / Path(name).name)] + files


NOT_RECEIVED = "(not received)"


def _file_in_folder(stored: str, save_location: str, folder: Path) -> Path:
    """Where a received workspace's layer is: a regular file inside `folder` (resolved), else
    a path in `folder` that does not exist, named after the stored file."""
    name = re.split(r"[\\/]", stored)[-1]   # a workspace saved on Windows has backslashes
    candidates = []
    if os.path.isabs(stored):   # as saved, then moved along with the workspace
        moved = os.path.join(folder, os.path.relpath(stored, save_location))
        candidates += [Path(stored), Path(os.path.normpath(moved))]
    if name not in ("", ".", ".."):
        candidates.append(folder / name)
    for candidate in candidates:
        if candidate.is_file() and candidate.resolve().is_relative_to(folder):
            return candidate.resolve()
    return folder / NOT_RECEIVED / (name or "unnamed")
