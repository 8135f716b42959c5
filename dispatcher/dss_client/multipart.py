"""A streamed multipart/form-data body with a known length, shaped like ITK-SNAP's uploads.

urllib3's `encode_multipart_formdata` builds the whole body in memory, which a CT workspace of
hundreds of MB must not do. This body reads the file in chunks while it is sent, and has a
`__len__`, so the transport sends `Content-Length` instead of chunked encoding.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator

CHUNK_BYTES = 1 << 20


def _quote(value: str) -> str:
    """A header parameter value: quotes and line breaks cannot break out of the quoted string."""
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class MultipartFile:
    """Iterable body: text fields, then the file part `file_field` streamed from disk."""

    def __init__(self, path: Path, fields: dict[str, str], file_field: str = "myfile",
                 content_type: str = "application/octet-stream"):
        self.path = Path(path)
        self.boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        self._size = os.path.getsize(self.path)
        self._head = b"".join(self._text_part(name, value) for name, value in fields.items())
        self._head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
            f'filename="{_quote(self.path.name)}"\r\nContent-Type: {content_type}\r\n\r\n'
        ).encode("utf-8")
        self._tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")

    def _text_part(self, name: str, value: str) -> bytes:
        return (f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n").encode("utf-8")

    def __len__(self) -> int:
        return len(self._head) + self._size + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self._head
        sent = 0
        with open(self.path, "rb") as stream:
            while chunk := stream.read(CHUNK_BYTES):
                sent += len(chunk)
                yield chunk
        if sent != self._size:
            raise OSError(f"{self.path} changed size while it was uploaded")
        yield self._tail
