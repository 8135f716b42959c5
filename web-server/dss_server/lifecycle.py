"""The ticket state machine: ONE table of (state, event) -> new state and who may trigger it.

The services ask `transition()`; the tests walk `TRANSITIONS`; docs/web-server.md prints `markdown_table()`.
"""
from __future__ import annotations

from dataclasses import dataclass

OWNER, ADMIN, PROVIDER, SYSTEM = "owner", "admin", "provider", "system"
TERMINAL = frozenset({"success", "failed", "timeout", "deleted"})


@dataclass(frozen=True)
class Transition:
    state: str | None  # None: the ticket does not exist yet
    event: str
    new_state: str
    actors: frozenset[str]
    meaning: str


def _t(state, event, new_state, actors, meaning) -> Transition:
    return Transition(state, event, new_state, frozenset(actors), meaning)


_ANY_LIVE = ("init", "ready", "claimed", "success", "failed", "timeout")

TRANSITIONS: tuple[Transition, ...] = (
    _t(None, "create", "init", {OWNER}, "POST /api/tickets"),
    _t("init", "ready", "ready", {OWNER, ADMIN}, "POST /api/tickets/{id}/status status=ready"),
    _t("ready", "claim", "claimed", {PROVIDER}, "POST /api/pro/services/claims (fair share, see Behaviour)"),
    _t("claimed", "success", "success", {PROVIDER}, "POST /api/pro/tickets/{id}/status status=success"),
    _t("claimed", "failed", "failed", {PROVIDER}, "POST /api/pro/tickets/{id}/status status=failed"),
    _t("success", "success", "success", {PROVIDER}, "repeated status: no-op, answers the status"),
    _t("failed", "failed", "failed", {PROVIDER}, "repeated status: no-op (ASHS fails twice)"),
    _t("claimed", "lease_expired", "ready", {SYSTEM},
       "no provider activity for DSS_CLAIM_LEASE s, attempts < DSS_MAX_ATTEMPTS"),
    _t("claimed", "lease_exhausted", "timeout", {SYSTEM},
       "no provider activity for DSS_CLAIM_LEASE s, no attempts left"),
    _t("claimed", "release", "ready", {PROVIDER},
       "POST /api/pro/tickets/{id}/release (our extension; the attempt is given back)"),
    _t("failed", "retry", "ready", {OWNER, ADMIN}, "GET /api/tickets/{id}/retry"),
    _t("timeout", "retry", "ready", {OWNER, ADMIN}, "GET /api/tickets/{id}/retry"),
    _t("success", "retry", "ready", {ADMIN}, "GET /api/tickets/{id}/retry (admin re-runs)"),
    _t("claimed", "retry", "ready", {ADMIN}, "GET /api/tickets/{id}/retry (admin requeues)"),
    *(_t(state, "delete", "deleted", {OWNER, ADMIN},
         "GET /api/tickets/{id}/delete or admin purge") for state in _ANY_LIVE),
    _t("deleted", "delete", "deleted", {OWNER, ADMIN}, "repeated delete: no-op, answers `deleted`"),
)

_BY_KEY = {(t.state, t.event): t for t in TRANSITIONS}


class IllegalTransition(Exception):
    """The reason is the message; the API answers it with a 4xx."""


def transition(state: str | None, event: str, actors: set[str] | frozenset[str]) -> str:
    """The state after `event`, if one of `actors` may trigger it from `state`."""
    found = _BY_KEY.get((state, event))
    if found is None:
        raise IllegalTransition(f"Cannot {event.replace('_', ' ')} a ticket whose status is {state}")
    if not found.actors & set(actors):
        raise IllegalTransition(f"Only the {' or '.join(sorted(found.actors))} may {event} "
                                f"a ticket whose status is {state}")
    return found.new_state


def allowed(state: str | None, event: str, actors: set[str] | frozenset[str]) -> bool:
    try:
        transition(state, event, actors)
        return True
    except IllegalTransition:
        return False


def markdown_table() -> str:
    """The transition table as Markdown, for docs/web-server.md."""
    lines = ["| from | event | to | who | how |", "|---|---|---|---|---|"]
    for t in TRANSITIONS:
        lines.append(f"| {t.state or '(none)'} | {t.event} | {t.new_state} | "
                     f"{', '.join(sorted(t.actors))} | {t.meaning} |")
    return "\n".join(lines) + "\n"
