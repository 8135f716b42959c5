"""Client of the inference server's REST API (docs/architecture.md, "Inference server API")."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import requests

from dss_client.errors import TransientError, parse_retry_after

CONNECT_TIMEOUT, READ_TIMEOUT = 10.0, 300.0
CHUNK_BYTES = 1 << 20
RESULT_FORMAT = "nii.gz"
_FILENAME = re.compile(r'filename="?([^";]+)"?')
_PATH = re.compile(r"""(?<![\w:/.])/(?:[^\s"'/]+/)+([^\s"'/]+)""")   # /a/b/name, not in URLs
REFUSED_IMAGE = (415, 422)   # the inference server's answers for a file it cannot use
_TRANSPORT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class InferenceFailed(Exception):
    """The inference server refused the image or the job failed: retrying will not help.
    The message is for the user (no paths of the inference server's disk); `detail`, the
    server's whole answer, is for the operator's log."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail or message


class JobLost(TransientError):
    """The server no longer knows the job (restarted, or it expired): submit it again."""


@dataclass
class JobState:
    status: str          # queued | running | done
    progress: float
    stage: str = ""


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("error") or response.text[:300])
    except ValueError:
        return response.text[:300].strip() or response.reason or "no details"


class InferenceClient:
    def __init__(self, base_url: str, endpoint: str):
        self.base_url, self.endpoint = base_url.rstrip("/"), endpoint
        self._http = requests.Session()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, url: str, **kwargs) -> requests.Response:
        try:
            return self._http.request(method, url, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), **kwargs)
        except _TRANSPORT as exc:
            raise TransientError(f"inference server {self.base_url} unreachable "
                                 f"({_reason(exc)})") from None

    def _raise_for(self, response: requests.Response, what: str) -> None:
        status = response.status_code
        if status == 404 and what == "job":
            raise JobLost("the inference server lost the job")
        if status == 503 or status == 429 or (status >= 500 and _is_not_job_failure(response)):
            raise TransientError(f"inference server busy or failing (HTTP {status}: "
                                 f"{_message(response)})",
                                 parse_retry_after(response.headers.get("Retry-After")))
        message = _message(response)
        detail = f"{message} (inference server, HTTP {status})"
        if what == "submit" and status in REFUSED_IMAGE:  # its reason is for the user as it is
            raise InferenceFailed(_without_paths(message), detail)
        raise InferenceFailed(f"{_without_paths(message)} (inference server, HTTP {status})",
                              detail)

    def submit(self, image: Path, options: dict | None = None) -> str:
        """Send the image and the model's options (form fields); returns the job's Endpoint
        path."""
        with open(image, "rb") as body:
            response = self._call("POST", f"{self.base_url}{self.endpoint}",
                                  params={"format": RESULT_FORMAT}, data=options or {},
                                  files={"itk_image": (image.name, body, "application/octet-stream")})
        if response.status_code != 200:
            self._raise_for(response, "submit")
        try:
            return str(response.json()["Endpoint"])
        except (ValueError, KeyError):
            raise TransientError(f"inference server answered without an Endpoint: "
                                 f"{response.text[:200]!r}") from None

    def poll(self, job: str, dest_dir: Path) -> JobState | Path:
        """The job's state while it runs; the downloaded label image once it is done."""
        response = self._call("GET", f"{self.base_url}{job}", stream=True)
        try:
            if response.status_code == 202:
                return _job_state(response)
            if response.status_code != 200:
                self._raise_for(response, "job")
            return self._save(response, dest_dir)
        finally:
            response.close()

    def _save(self, response: requests.Response, dest_dir: Path) -> Path:
        found = _FILENAME.search(response.headers.get("Content-Disposition", ""))
        name = Path(found.group(1)).name if found else f"result.{RESULT_FORMAT}"
        if name in ("", ".", ".."):
            name = f"result.{RESULT_FORMAT}"
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / name
        partial = target.with_name(name + ".part")
        try:
            with open(partial, "wb") as out:
                for chunk in response.iter_content(CHUNK_BYTES):
                    out.write(chunk)
        except _TRANSPORT as exc:
            partial.unlink(missing_ok=True)
            raise TransientError(f"result download interrupted: {exc}") from None
        partial.replace(target)
        return target

    def report(self, job: str) -> dict:
        response = self._call("GET", f"{self.base_url}{job}/report")
        if response.status_code != 200:
            self._raise_for(response, "job")
        try:
            return response.json()
        except ValueError:
            raise TransientError("inference report is not JSON") from None

    def cancel(self, job: str) -> None:
        """Best effort: the job is of no use any more."""
        try:
            self._http.delete(f"{self.base_url}{job}", timeout=(CONNECT_TIMEOUT, 30))
        except requests.RequestException:
            pass


def _without_paths(text: str) -> str:
    """`text` with each absolute path cut to its file name: the user has no use for the
    inference server's folders, and they are not the user's business."""
    return _PATH.sub(r"\1", text)


def _job_state(response: requests.Response) -> JobState:
    """A 202's body; anything else than a job state is the inference server's fault, so it is
    retried (a proxy's error page, a half-deployed server), naming what it answered."""
    try:
        state = response.json()
        progress = float(state.get("progress") or 0.0)
        if math.isfinite(progress):
            return JobState(str(state.get("status", "running")), progress,
                            str(state.get("stage") or ""))
    except (ValueError, TypeError, AttributeError):
        pass
    raise TransientError(f"the inference server answered a job's status with "
                         f"{response.text[:200]!r}, which is not a job state")


def _reason(exc: Exception) -> str:
    """The short cause of a transport error ('Connection refused'), not urllib3's paragraph."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(exc))
    if found:
        return found.group(1).strip()
    return "timed out" if isinstance(exc, requests.Timeout) else type(exc).__name__


def _is_not_job_failure(response: requests.Response) -> bool:
    """A 5xx from a proxy or a crash is transient; a job that reports `failed` is not."""
    try:
        return response.json().get("status") != "failed"
    except ValueError:
        return True
