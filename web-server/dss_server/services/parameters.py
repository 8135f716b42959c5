"""Per-ticket parameters (issue 15): a service declares them in service.json, a ticket's
workspace gives values, and the ticket keeps them typed with the defaults filled in.

A declaration is checked when the service is registered; values are checked against it when the
ticket is marked ready. Every refusal is a 400 naming the parameter.
"""
from __future__ import annotations

import json
import math
import re

from ..errors import Invalid

TYPES = ("float", "int", "bool", "choice", "string")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
STRING_CAP = 1000  # the most characters a string parameter may declare (max_length)
DESCRIPTION_CAP = 500
MAX_PARAMETERS = 50
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
# The keys each type may declare besides name, type, default and description.
_TYPE_KEYS = {"float": {"min", "max"}, "int": {"min", "max"}, "bool": set(),
              "choice": {"choices"}, "string": {"max_length"}}


def declared(descriptor: dict) -> list[dict]:
    """The service's declared parameters: [] when it declares none, or when its declaration
    is one registration would now refuse (a service stored before the check existed)."""
    try:
        check_declaration(descriptor)
    except Invalid:
        return []
    return descriptor.get("parameters", [])


def check_declaration(descriptor: dict) -> None:
    """Refuse a malformed `parameters` list of a service.json, naming the parameter at fault."""
    parameters = descriptor.get("parameters", [])
    if not isinstance(parameters, list) or len(parameters) > MAX_PARAMETERS:
        raise Invalid(f"service.json: 'parameters' must be a list of at most "
                      f"{MAX_PARAMETERS} objects")
    seen: set[str] = set()
    for index, parameter in enumerate(parameters):
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise Invalid(f"service.json: parameter {index + 1} needs a 'name' of letters, "
                          "digits and _ (at most 40, not starting with a digit)")
        if name in seen:
            raise Invalid(f"service.json: parameter '{name}' is declared twice")
        seen.add(name)
        problem = _declaration_problem(parameter)
        if problem:
            raise Invalid(f"service.json: parameter '{name}': {problem}")


def _declaration_problem(parameter: dict) -> str | None:
    kind = parameter.get("type")
    if kind not in TYPES:
        return f"'type' must be one of {', '.join(TYPES)}"
    unknown = set(parameter) - {"name", "type", "default", "description"} - _TYPE_KEYS[kind]
    if unknown:
        return f"unknown key(s) {', '.join(sorted(map(repr, unknown)))} for type {kind}"
    if not isinstance(parameter.get("description", ""), str) \
            or len(parameter.get("description", "")) > DESCRIPTION_CAP:
        return f"'description' must be text of at most {DESCRIPTION_CAP} characters"
    problem = _bounds_problem(parameter, kind)
    if problem:
        return problem
    if "default" not in parameter:
        return "a 'default' is required"
    try:
        typed(parameter, parameter["default"])
    except Invalid as exc:
        return f"its default is invalid ({exc.message.split(': ', 1)[1]})"
    return None


def _bounds_problem(parameter: dict, kind: str) -> str | None:
    if kind in ("float", "int"):
        bounds = [parameter.get(key) for key in ("min", "max")]
        if any(bound is not None and not _is_number(bound, kind == "int") for bound in bounds):
            return f"'min' and 'max' must be {'whole ' if kind == 'int' else ''}numbers"
        low, high = bounds
        if low is not None and high is not None and low > high:
            return "'min' is larger than 'max'"
    if kind == "choice":
        choices = parameter.get("choices")
        if not isinstance(choices, list) or not choices or \
                not all(isinstance(choice, str) and choice for choice in choices):
            return "'choices' must be a non-empty list of texts"
    if kind == "string":
        cap = parameter.get("max_length", STRING_CAP)
        if not _is_number(cap, True) or not 1 <= cap <= STRING_CAP:
            return f"'max_length' must be a whole number from 1 to {STRING_CAP}"
    return None


def _is_number(value, whole: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return not whole or float(value).is_integer()


def resolve(parameters: list[dict], given: dict[str, str]) -> dict:
    """The typed value of every declared parameter: the given text, else the default. A value
    the declaration refuses, or a name it does not declare, is a 400 naming it."""
    names = {parameter["name"] for parameter in parameters}
    unknown = sorted(set(given) - names)
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise Invalid(f"Parameter '{unknown[0][:80]}': unknown to this service "
                      f"(its parameters: {known})")
    return {p["name"]: typed(p, given[p["name"]]) if p["name"] in given else typed(p, p["default"])
            for p in parameters}


def typed(parameter: dict, value):
    """`value` (a workspace's text, or a JSON default) as the declared type."""
    kind, text = parameter["type"], str(value).strip()
    if kind in ("float", "int"):
        return _number(parameter, value, text)
    if kind == "bool":
        if isinstance(value, bool) or text.lower() in TRUE + FALSE:
            return value if isinstance(value, bool) else text.lower() in TRUE
        _refuse(parameter, "true or false", value)
    if kind == "choice":
        if text not in parameter["choices"]:
            _refuse(parameter, f"one of {', '.join(parameter['choices'])}", value)
        return text
    cap = parameter.get("max_length", STRING_CAP)
    if not isinstance(value, str) or len(value) > cap:
        _refuse(parameter, f"a text of at most {cap} characters", value)
    return value


def _number(parameter: dict, value, text: str):
    whole = parameter["type"] == "int"
    low, high = parameter.get("min"), parameter.get("max")
    try:
        number = float(text) if not isinstance(value, bool) else math.nan
    except ValueError:
        number = math.nan
    if not _is_number(number, whole) or (low is not None and number < low) or \
            (high is not None and number > high):
        _refuse(parameter, _number_phrase(whole, low, high), value)
    return int(number) if whole else number


def _number_phrase(whole: bool, low, high) -> str:
    noun = "a whole number" if whole else "a number"
    if low is not None and high is not None:
        return f"expected {noun} from {low:g} to {high:g}"
    if low is not None:
        return f"expected {noun} of at least {low:g}"
    if high is not None:
        return f"expected {noun} of at most {high:g}"
    return f"expected {noun}"


def _refuse(parameter: dict, expected: str, value) -> None:
    expected = expected if expected.startswith("expected") else f"expected {expected}"
    shown = value if isinstance(value, str) else json.dumps(value)
    raise Invalid(f"Parameter '{parameter['name']}': {expected}, got {shown[:80]!r}")
