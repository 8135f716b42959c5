"""POST /<model>/inference, and GET/DELETE of the Endpoint it answers with."""
from __future__ import annotations

from flask import Blueprint, jsonify, request, send_file

from ..errors import ApiError, error_response
from ..runtime import current_runtime
from ..submission import check_accepting, submit_upload

bp = Blueprint("inference", __name__)


@bp.post("/<model>/inference")
def submit(model: str):
    runtime = current_runtime()
    check_accepting(runtime.jobs, runtime.registry, model)  # before the upload is read
    job = submit_upload(runtime.jobs, runtime.registry, model, request.files.get("itk_image"),
                        request.args.get("format") or request.form.get("format"), request.values)
    return jsonify({"Endpoint": f"/{model}/inference/{job.id}"})


@bp.get("/<model>/inference/<job_id>")
def result(model: str, job_id: str):
    job = _job(model, job_id)
    if job.status != "done":
        return _unfinished(job)
    fmt = request.args.get("format")
    path = current_runtime().result_in_format(job, fmt) if fmt else job.result_path
    return send_file(path, mimetype="application/octet-stream", as_attachment=True,
                     download_name=path.name, max_age=0)


@bp.get("/<model>/inference/<job_id>/report")
def report(model: str, job_id: str):
    job = _job(model, job_id)
    if job.status != "done":
        return _unfinished(job)
    return jsonify(job.report)


@bp.delete("/<model>/inference/<job_id>")
def cancel(model: str, job_id: str):
    job = _job(model, job_id)
    was = job.status
    current_runtime().jobs.cancel(job)
    if was == "running":
        return jsonify({"status": "cancelling", "message": "the job stops at its next step"}), 202
    return jsonify({"status": "cancelled" if was == "queued" else "deleted"})


def _job(model: str, job_id: str):
    job = current_runtime().jobs.get(job_id, model)
    if job is None:
        raise ApiError(404, f"no job {job_id!r} for model {model!r} (unknown, or removed "
                            "after the retention time)")
    return job


def _unfinished(job):
    if job.status in ("queued", "running"):
        return jsonify(job.summary()), 202
    if job.status == "cancelled":
        return error_response(410, job.error or "the job was cancelled", status="cancelled")
    return error_response(job.error_status or 500, job.error or "the job failed", status="failed")
