"""The lung services as SDK services: the function sends the input image to the inference
server, follows its job (passing its progress on) and turns the label image and report into a
Result. Claims, leases, retries, cancel and release are the SDK's (dss_client.sdk)."""
from __future__ import annotations

import logging
import time

from dss_client.sdk import Context, Service, TicketFailed

from .config import ServiceSpec
from .inference import InferenceClient, InferenceFailed, JobLost, JobState
from .results import build_result

log = logging.getLogger(__name__)
POLL_FIRST, POLL_MAX = 0.1, 1.0   # seconds between job polls: quick for small jobs, then calmer
PROGRESS_SECONDS = 2.0            # an unchanged progress is posted again: it renews the lease


def inference_service(spec: ServiceSpec, inference_timeout: float) -> Service:
    """The service `spec` names, computed by its inference server."""
    def run(ctx: Context, workspace):
        label_path, report = _inference(ctx, spec, inference_timeout)
        return build_result(spec.output, ctx.image, label_path, report, ctx.ticket_id,
                            ctx.scratch)
    return Service(spec.service, run, input_tag=spec.input_tag, provider=spec.provider,
                   stage="inference")


def _inference(ctx: Context, spec: ServiceSpec, timeout: float) -> tuple:
    client = InferenceClient(spec.inference_url, spec.endpoint)
    try:
        return ctx.retry(lambda: _run_job(ctx, client, timeout), "inference")
    except InferenceFailed as exc:
        log.warning("the inference server refused %s: %s", ctx.image.name, exc.detail)
        raise TicketFailed(f"The image {ctx.image.name} could not be processed: {exc}") from None
    finally:
        client.close()


def _run_job(ctx: Context, client: InferenceClient, timeout: float) -> tuple:
    # the ticket's parameters are the model's options (service.json declares them as the
    # inference server names them; lung segmentation declares none)
    job = client.submit(ctx.image, ctx.params)
    log.info("inference job %s", job)
    deadline = time.monotonic() + timeout
    pause, posted, posted_at = POLL_FIRST, None, 0.0
    try:
        while True:
            state = client.poll(job, ctx.scratch / "inference")
            if not isinstance(state, JobState):
                return state, client.report(job)
            if state.progress != posted or time.monotonic() - posted_at > PROGRESS_SECONDS:
                ctx.progress(state.progress)
                posted, posted_at = state.progress, time.monotonic()
            if time.monotonic() > deadline:
                raise TicketFailed(f"Inference took longer than {timeout:g} s and was stopped.")
            # a shutdown or a deleted ticket does not wait for a long job: it is cancelled
            # below (and on shutdown the ticket released, so another instance starts it)
            ctx.sleep(pause)
            pause = min(POLL_MAX, pause * 1.5)
    except JobLost:
        raise
    except BaseException:
        client.cancel(job)
        raise
