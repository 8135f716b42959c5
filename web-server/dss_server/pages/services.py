"""/services: every current service with its health badges; a service page with its service.json."""
from __future__ import annotations

import json

from flask import abort, render_template

from ..api._http import db
from ..errors import ServiceNotFound
from ..services import catalog, parameters
from ._web import login_required, page_blueprint
from .queries import shown

bp = page_blueprint("services_page", __name__)


def descriptor(service) -> dict:
    try:
        parsed = json.loads(service.json or "{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def alive_badge(seconds: int) -> tuple[str, str]:
    """Provider health from the last claim or ping (spec c.7 thresholds)."""
    colour = "green" if seconds < 600 else "yellow" if seconds < 3600 else "red"
    return colour, f"heard from {_duration(seconds)} ago"


def error_badge(successes: int, failures: int) -> tuple[str, str]:
    total = successes + failures
    if not total:
        return "cyan", "no tickets in 24 h"
    rate = failures / total
    colour = "green" if rate < 0.1 else "yellow" if rate < 0.2 else "red"
    return colour, f"{successes} ok / {failures} failed in 24 h"


def queue_badge(length: int) -> tuple[str, str]:
    colour = "cyan" if length == 0 else "green" if length < 5 else \
        "yellow" if length < 25 else "red"
    return colour, f"{length} queued"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _card(db_session, service) -> dict:
    stats = catalog.stats(db_session, service)
    runtime = stats.get("avg_duration")
    return {"service": service, "descriptor": descriptor(service),
            "badges": [alive_badge(stats["last_heard_from"]),
                       error_badge(stats["n_success"], stats["n_failed"]),
                       queue_badge(stats["queue_length"])],
            "runtime": f"mean run time {_duration(runtime)}" if runtime is not None else None}


@bp.get("/services")
@login_required
def service_list():
    cards = [_card(db(), service) for service in catalog.current_services(db())]
    return render_template("services.html", cards=cards)


@bp.get("/services/<githash>")
@login_required
def service_page(githash):
    try:
        service = catalog.by_githash(db(), githash)
    except ServiceNotFound:
        abort(404, f"No service with githash {githash}.")
    card = _card(db(), service)
    pretty = json.dumps(card["descriptor"], indent=2, ensure_ascii=False)
    return render_template("service.html", card=card, pretty=pretty,
                           tags=[tag for tag in card["descriptor"].get("tags") or []
                                 if isinstance(tag, dict)],
                           extra=_extra_facts(card["descriptor"]),
                           parameters=[_parameter_row(p)
                                       for p in parameters.declared(card["descriptor"])])


def _parameter_row(parameter: dict) -> dict:
    """A declared (and so checked) parameter as the page lists it."""
    kind = parameter["type"]
    if kind in ("float", "int"):
        bounds = [parameter.get(key) for key in ("min", "max")]
        allowed = " to ".join("…" if b is None else shown(b) for b in bounds) \
            if bounds != [None, None] else "any"
    elif kind == "choice":
        allowed = ", ".join(parameter["choices"])
    elif kind == "string":
        allowed = f"at most {parameter.get('max_length', parameters.STRING_CAP)} characters"
    else:
        allowed = "true or false"
    return {"name": parameter["name"], "type": kind, "allowed": allowed,
            "default": shown(parameter["default"]),
            "description": parameter.get("description", "")}


# Fields the service page lays out itself; any other plain field is listed by its name.
_SHOWN_FIELDS = {"name", "version", "shortdesc", "longdesc", "author", "url", "keywords", "tags"}


def _extra_facts(descriptor: dict) -> list[tuple[str, str]]:
    return [(key, str(value)) for key, value in descriptor.items()
            if key not in _SHOWN_FIELDS and isinstance(value, (str, int, float))]
