"""A provider service is a decorated function; `dss serve module:function` finds it."""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


class LoadError(ValueError):
    """`module:function` does not name a service; the message says why."""


@dataclass(frozen=True)
class Service:
    name: str                # service name, or the 40-hex githash of one registered version
    function: Callable       # function(ctx, workspace) -> Result
    version: str = ""        # the registered version served; "" = every version of `name`
    input_tag: str = ""      # layer tag holding the input image; "" = the main layer
    provider: str = ""       # provider name for claims; "" = DSS_PROVIDER_NAME
    stage: str = "run"       # the function's stage in progress and metrics
    descriptor: Path | None = None   # service.json that `dss serve` registers

    @property
    def label(self) -> str:
        return self.name if len(self.name) != 40 else self.name[:8]

    def __call__(self, ctx, workspace):
        return self.function(ctx, workspace)

    def default_parameters(self) -> dict:
        """name -> default of the parameters service.json declares; {} without a readable one
        (the server checked the declaration when the service was registered)."""
        if self.descriptor is None:
            return {}
        try:
            declared = json.loads(self.descriptor.read_text(encoding="utf-8"))["parameters"]
            return {parameter["name"]: parameter["default"] for parameter in declared}
        except (AttributeError, OSError, ValueError, KeyError, TypeError):
            return {}


def service(name: str, version: str = "", *, input_tag: str = "", provider: str = "",
            descriptor: str | None = "service.json") -> Callable[[Callable], Service]:
    """`@service("MySeg", version="1.0.0", input_tag="CT")` over `def run(ctx, workspace)`;
    `descriptor` (next to the module) is what `dss serve` registers when it may."""
    def wrap(function: Callable) -> Service:
        folder = Path(inspect.getfile(function)).resolve().parent
        return Service(name, function, version, input_tag, provider,
                       descriptor=folder / descriptor if descriptor else None)
    return wrap


def load(target: str) -> list[Service]:
    """The services `module:function` names (`module` alone: all of its services); the module
    is a dotted name importable from the working directory, or a .py file."""
    module_name, _, attribute = target.partition(":")
    module = _import(module_name)
    if attribute:
        found = getattr(module, attribute, None)
        if not isinstance(found, Service):
            raise LoadError(f"{target} is not a function decorated with @service")
        return [found]
    services = [value for value in vars(module).values() if isinstance(value, Service)]
    if not services:
        raise LoadError(f"{module_name} holds no function decorated with @service")
    return services


def _import(name: str):
    if name.endswith(".py"):
        path = Path(name).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None or not path.is_file():
            raise LoadError(f"no such file: {name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path and str(Path.cwd()) not in sys.path:   # as `python -m` would
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise LoadError(f"cannot import {name}: {exc}") from None
