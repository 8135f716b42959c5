"""JSON errors for every failure: the API never answers HTML or a stack trace."""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from .imageio.exceptions import ImageInputError, ImageTooLarge, InvalidImage, UnknownResultFormat, UnsupportedFormat

log = logging.getLogger(__name__)

# The HTTP status answering each problem with an input image, at upload or when a job reads it.
IMAGE_ERROR_STATUS = {UnknownResultFormat: 400, ImageTooLarge: 413, UnsupportedFormat: 415,
                      InvalidImage: 422}


class ApiError(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.retry_after, self.extra = status, message, retry_after, extra


def error_response(code: int, message: str, retry_after: int | None = None, **extra):
    """A JSON error {"error": message, **extra} with HTTP status code."""
    response = jsonify({"error": message, **extra})
    response.status_code = code
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def image_error_status(exc: ImageInputError) -> int:
    return IMAGE_ERROR_STATUS[type(exc)]


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.message, exc.retry_after, **exc.extra)

    @app.errorhandler(ImageInputError)
    def _bad_image(exc: ImageInputError):
        return error_response(image_error_status(exc), exc.reason)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return error_response(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal error; see the server log")
