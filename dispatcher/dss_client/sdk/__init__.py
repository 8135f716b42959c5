"""The provider SDK: a DSS service is a decorated function.

    from dss_client.sdk import Result, service

    @service("MySeg", version="1.0.0", input_tag="CT")
    def run(ctx, workspace):
        ...
        return Result().add_segmentation(mask, labels={1: ("lesion", (255, 0, 0))})

`dss serve module:run` logs in with DSS_PROVIDER_TOKEN, registers the service (with an
administrator's token), claims tickets with the long poll, downloads and reads the workspace,
calls the function, writes and uploads the result workspace, with lease renewal, retries,
cancel detection and release on SIGTERM. The dispatcher (dss_dispatcher) is built on it.
"""
from ..errors import TransientError
from .context import Cancelled, Context, TicketFailed
from .result import Result
from .service import Service, service

__all__ = ["Cancelled", "Context", "Result", "Service", "TicketFailed", "TransientError",
           "service"]
