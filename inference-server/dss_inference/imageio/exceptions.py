"""What is wrong with an input image."""
from __future__ import annotations


class ImageInputError(Exception):
    """The input cannot be used; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason
