"""What is wrong with an input image; dss_inference.errors says how the API answers each."""
from __future__ import annotations


class ImageInputError(Exception):
    """The input cannot be used; `reason` says why, in words for the client."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class UnsupportedFormat(ImageInputError):
    """The upload's file type is not one the server reads."""


class UnknownResultFormat(ImageInputError):
    """The result was asked for in a format the server does not write."""


class ImageTooLarge(ImageInputError):
    """The image, or the archive holding it, exceeds a configured limit."""


class InvalidImage(ImageInputError):
    """The file is unreadable, unsafe, or not a usable 3-D CT volume."""
