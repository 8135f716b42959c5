"""The `.itksnap` workspace file format: ITK-SNAP's `Registry` XML, read and written like ITK-SNAP.

The format is ITK-SNAP's `Registry` (SNAP `Common/Registry.cxx`): an XML document with a
fixed DOCTYPE, nested `<folder key=..>` and `<entry key=.. value=..>`, entries before folders,
each sorted by key (ITK-SNAP keeps them in `std::map`), values escaped with `EncodeXML`. A key
with dots (`Layers.Layer[000]`) names nested folders, and a folder key seen twice is merged, as
ITK-SNAP's reader does.
"""
from __future__ import annotations

import xml.parsers.expat

WORKSPACE_VERSION = "20230925"
HEADER = ("ITK-SNAP (itksnap.org) Project File\n\n"
          "This file can be moved/copied along with the images that it references\n"
          "as long as the relative location of the images to the project file is \n"
          "the same. Do not modify the SaveLocation entry, or this will not work.\n")
DOCTYPE = ("<!DOCTYPE registry [\n"
           "<!ELEMENT registry (entry*,folder*)>\n"
           "<!ELEMENT folder (entry*,folder*)>\n"
           "<!ELEMENT entry EMPTY>\n"
           "<!ATTLIST folder key CDATA #REQUIRED>\n"
           "<!ATTLIST entry key CDATA #REQUIRED>\n"
           "<!ATTLIST entry value CDATA #REQUIRED>\n"
           "]>\n")
_XML_ESCAPES = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&apos;", '"': "&quot;"}


class WorkspaceError(ValueError):
    """The file is not an ITK-SNAP workspace ITK-SNAP would open."""


class Registry:
    """One registry folder: entries and sub-folders, addressed by dotted keys."""

    def __init__(self):
        self.entries: dict[str, str] = {}
        self.folders: dict[str, Registry] = {}

    def folder(self, key: str) -> "Registry":
        """The folder at a dotted key, created when missing (ITK-SNAP's `Registry::Folder`)."""
        node = self
        for part in key.split("."):
            node = node.folders.setdefault(part, Registry())
        return node

    def has_folder(self, key: str) -> bool:
        node = self
        for part in key.split("."):
            if part not in node.folders:
                return False
            node = node.folders[part]
        return True

    def get(self, key: str, default: str | None = None) -> str | None:
        parent, _, name = key.rpartition(".")
        if parent and not self.has_folder(parent):
            return default
        return (self.folder(parent) if parent else self).entries.get(name, default)

    def set(self, key: str, value) -> None:
        parent, _, name = key.rpartition(".")
        (self.folder(parent) if parent else self).entries[name] = str(value)

    def remove_folder(self, key: str) -> None:
        parent, _, name = key.rpartition(".")
        if not parent or self.has_folder(parent):
            (self.folder(parent) if parent else self).folders.pop(name, None)

    def write_xml(self, lines: list[str], indent: str) -> None:
        for key in sorted(self.entries, key=_byte_order):
            lines.append(f'{indent}<entry key="{_escape(key)}" value="{_escape(self.entries[key])}" />')
        for key in sorted(self.folders, key=_byte_order):
            lines.append(f'{indent}<folder key="{_escape(key)}" >')
            self.folders[key].write_xml(lines, indent + "  ")
            lines.append(f"{indent}</folder>")

    def to_xml(self) -> str:
        lines = ['<?xml version="1.0" encoding="UTF-8" ?>', f"<!--{HEADER}-->", DOCTYPE + "<registry>"]
        self.write_xml(lines, "  ")
        lines.append("</registry>")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_xml(cls, data: bytes) -> "Registry":
        root, stack = cls(), []
        parser = xml.parsers.expat.ParserCreate()

        def refuse_entities(*_):  # billion-laughs and external entities
            raise WorkspaceError("entity declarations are not allowed in a workspace")

        def start(name, attrs):
            name = name.lower()
            if name == "registry":
                stack.append(root)
                return
            if not stack:
                raise WorkspaceError("not an ITK-SNAP registry: <registry> is missing")
            if "key" not in attrs:
                raise WorkspaceError(f"<{name}> without a 'key' attribute")
            if name == "folder":
                stack.append(stack[-1].folder(attrs["key"]))
            elif name == "entry":
                if "value" not in attrs:
                    raise WorkspaceError(f"entry {attrs['key']!r} has no 'value' attribute")
                stack[-1].set(attrs["key"], attrs["value"])
            else:
                raise WorkspaceError(f"unknown XML element <{name}>")

        def end(name):
            if name.lower() == "folder":
                stack.pop()

        parser.EntityDeclHandler = refuse_entities
        parser.ExternalEntityRefHandler = refuse_entities
        parser.StartElementHandler, parser.EndElementHandler = start, end
        try:
            parser.Parse(data, True)
        except xml.parsers.expat.ExpatError as exc:
            raise WorkspaceError(f"not valid XML: {exc}") from None
        return root


def _escape(text: str) -> str:
    return "".join(_XML_ESCAPES.get(c, c) for c in text)


def _byte_order(key: str) -> bytes:
    return key.encode("utf-8")
