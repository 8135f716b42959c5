"""What the server reads from a ticket's .itksnap workspace when it is marked ready: the
`DSS` folder that dss_client writes (`Parameters` entries and `ScanName`), and the main layer's
nickname. ITK-SNAP ignores registry folders it does not know, so the folder travels unharmed.

The registry format is ITK-SNAP's (`<folder key=..>`, `<entry key=.. value=..>`, dotted keys
naming nested folders); entity declarations are refused (billion laughs, external entities).
"""
from __future__ import annotations

import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path

MAX_WORKSPACE_BYTES = 16 * 1024 * 1024  # a real workspace is a few KB
MAX_SCAN_NAME = 255


@dataclass
class WorkspaceInfo:
    parameters: dict[str, str] = field(default_factory=dict)
    scan_name: str | None = None


class _Unreadable(Exception):
    pass


def read(path: Path | None) -> WorkspaceInfo:
    """The workspace's DSS facts; none from a missing or unreadable file (the ticket then
    gets the service's defaults, as a submission without a workspace does)."""
    if path is None or not path.is_file() or path.stat().st_size > MAX_WORKSPACE_BYTES:
        return WorkspaceInfo()
    try:
        entries = _entries(path.read_bytes())
    except (_Unreadable, xml.parsers.expat.ExpatError):
        return WorkspaceInfo()
    prefix = "DSS.Parameters."
    parameters = {key[len(prefix):]: value for key, value in entries.items()
                  if key.startswith(prefix) and "." not in key[len(prefix):]}
    name = (entries.get("DSS.ScanName") or _main_nickname(entries) or "").strip()
    return WorkspaceInfo(parameters, name[:MAX_SCAN_NAME] or None)


def _main_nickname(entries: dict[str, str]) -> str | None:
    for key, value in entries.items():
        layer, _, rest = key.rpartition(".Role")
        if not rest and value == "MainRole" and layer.startswith("Layers.Layer["):
            return entries.get(f"{layer}.LayerMetaData.CustomNickName") or None
    return None


def _entries(data: bytes) -> dict[str, str]:
    """Every entry by its full dotted key (folders joined with dots, as ITK-SNAP merges them)."""
    entries: dict[str, str] = {}
    folders: list[str] = []
    parser = xml.parsers.expat.ParserCreate()

    def refuse(*_):
        raise _Unreadable()

    def start(name, attrs):
        key = attrs.get("key")
        if name == "folder":
            folders.append(key or "")  # popped again at its end
        elif name == "entry" and key is not None and "value" in attrs:
            entries[".".join(folders + [key])] = attrs["value"]

    def end(name):
        if name == "folder":
            folders.pop()

    parser.EntityDeclHandler = parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.Parse(data, True)
    return entries
