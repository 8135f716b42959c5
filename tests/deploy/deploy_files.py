"""Readers for the deployment files, shared by the tests in tests/deploy.

A small Dockerfile parser, a .dockerignore matcher, the `ast` scan of the environment variables
a component reads, and `oc process`-style parameter substitution of the OpenShift template.
"""
from __future__ import annotations

import ast
import json
import re
import secrets
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from helpers import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
COMPOSE_GPU_FILE = REPO_ROOT / "docker-compose.gpu.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
TEMPLATE_FILE = REPO_ROOT / "openshift" / "template.yaml"
DASHBOARD_FILE = REPO_ROOT / "grafana" / "dss-dashboard.json"
DOCS = REPO_ROOT / "docs"


@dataclass(frozen=True)
class Component:
    name: str                 # compose service, OpenShift container, build context folder
    config_files: tuple[str, ...]  # relative to the context; the modules that read os.environ
    settings_docs: tuple[str, ...]  # the pages of docs/ that hold its settings tables

    @property
    def context(self) -> Path:
        return REPO_ROOT / self.name

    @property
    def settings_pages(self) -> list[Path]:
        return [DOCS / page for page in self.settings_docs]


COMPONENTS = {
    c.name: c for c in (
        Component("web-server", ("dss_server/config.py",), ("web-server.md", "web-ui.md")),
        Component("dispatcher", ("dss_dispatcher/config.py", "dss_client/sdk/config.py"),  # not the CLI's
                  ("dispatcher.md",)),
        Component("inference-server", ("dss_inference/config.py",), ("inference.md",)),
    )
}
DOCKERFILE_CONTEXTS = [REPO_ROOT / name for name in ("web-server", "dispatcher", "inference-server", "db")]

# ---------------------------------------------------------------------------- Dockerfiles

DOCKERFILE_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
    "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}


class DockerfileError(ValueError):
    pass


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int

    def json_args(self) -> list[str] | None:
        """The exec (JSON array) form of CMD/ENTRYPOINT/COPY..., or None for the shell form."""
        if not self.args.startswith("["):
            return None
        value = json.loads(self.args)
        if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            raise DockerfileError(f"line {self.line}: {self.keyword} JSON form must be strings")
        return value


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comment lines dropped, as BuildKit does."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # also inside a continuation: Docker drops those lines
        if "<<" in stripped and re.search(r"<<-?\s*['\"]?[A-Z]+", stripped) and not pending:
            raise DockerfileError(f"line {number}: heredocs are not supported by this parser")
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        logical = pending + stripped
        pending = ""
        keyword, _, args = logical.partition(" ")
        if keyword.upper() not in DOCKERFILE_INSTRUCTIONS:
            raise DockerfileError(f"line {start}: unknown instruction {keyword!r}")
        if not args.strip():
            raise DockerfileError(f"line {start}: {keyword} has no arguments")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
    if pending:
        raise DockerfileError("the last line ends with a continuation backslash")
    if not instructions or instructions[0].keyword not in ("FROM", "ARG"):
        raise DockerfileError("a Dockerfile must start with FROM (or ARG before FROM)")
    return instructions


def env_assignments(args: str) -> dict[str, str]:
    """`ENV A=1 B="two words"` (or the legacy `ENV A value`) as a mapping."""
    tokens = shlex.split(args)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    pairs = {}
    for token in tokens:
        name, sep, value = token.partition("=")
        if not sep:
            raise DockerfileError(f"ENV token without '=': {token!r}")
        pairs[name] = value
    return pairs


def copy_sources(instruction: Instruction) -> list[str]:
    """Source paths of a COPY/ADD from the build context ([] for `--from=` stage copies)."""
    tokens = instruction.json_args() or shlex.split(instruction.args)
    flags = [t for t in tokens if t.startswith("--")]
    if any(flag.startswith("--from=") for flag in flags):
        return []
    paths = [t for t in tokens if not t.startswith("--")]
    if len(paths) < 2:
        raise DockerfileError(f"line {instruction.line}: {instruction.keyword} needs source and destination")
    return paths[:-1]


def dockerignore_patterns(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def is_ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a folder excludes all in it."""
    parts = Path(relative).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def _pattern_regex(pattern: str) -> re.Pattern:
    """Go filepath.Match syntax plus `**` (any number of folders), as .dockerignore has it."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


# ---------------------------------------------------------------------------- environment

def env_vars_read(path: Path) -> set[str]:
    """Names passed as a literal to os.environ.get / os.getenv / os.environ[...] / _env(...),
    or to the config modules' parsing readers (_number, _flag, _port, _domains)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and _is_env_reader(node.func):
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value)
        elif isinstance(node, ast.Subscript) and _dotted(node.value) == "os.environ":
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                names.add(node.slice.value)
    return names


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _is_env_reader(func: ast.AST) -> bool:
    return _dotted(func) in ("os.environ.get", "os.getenv", "environ.get", "getenv", "_env",
                             "_number", "_flag", "_port", "_domains")


def component_env_reads(component: Component) -> set[str] | None:
    """Everything the component's config modules read; None while none is written yet."""
    paths = [component.context / rel for rel in component.config_files]
    existing = [path for path in paths if path.exists()]
    if not existing:
        return None
    return set().union(*(env_vars_read(path) for path in existing))


# ---------------------------------------------------------------------------- YAML files

def load_yaml(path: Path):
    with open(path) as stream:
        return yaml.safe_load(stream)


INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])[^}]*)?\}")


def compose_interpolated_names(text: str) -> set[str]:
    """${VAR}, ${VAR:-default}, ${VAR:?error} in a compose file; `$$` escapes are not ones."""
    return {match.group(1) for match in INTERPOLATION.finditer(text.replace("$$", ""))}


def env_example_names() -> set[str]:
    """Variables .env.example assigns or shows commented out (`# NAME=`)."""
    names = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line.strip())
        if match:
            names.add(match.group(1))
    return names


TEMPLATE_PARAMETER = re.compile(r"\$\{\{?([A-Z][A-Z0-9_]*)\}\}?")


def template_parameter_names(text: str) -> set[str]:
    return set(TEMPLATE_PARAMETER.findall(text))


def process_template(template: dict, values: dict[str, str] | None = None) -> list[dict]:
    """What `oc process` makes: parameters substituted (generated ones get a stand-in value)."""
    values = dict(values or {})
    for parameter in template.get("parameters", []):
        name = parameter["name"]
        if name in values:
            continue
        if parameter.get("generate") == "expression":
            values[name] = "generated0123456789"
        elif "value" in parameter:
            values[name] = str(parameter["value"])
        elif parameter.get("required"):
            raise KeyError(f"required parameter {name} has no value")
        else:
            values[name] = ""
    return [_substitute(obj, values) for obj in template["objects"]]


def _substitute(node, values: dict[str, str]):
    if isinstance(node, dict):
        return {key: _substitute(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(value, values) for value in node]
    if isinstance(node, str):
        whole = re.fullmatch(r"\$\{\{([A-Z][A-Z0-9_]*)\}\}", node)
        if whole:  # ${{NAME}}: the value as YAML (a number stays a number)
            return yaml.safe_load(values[whole.group(1)])
        return re.sub(r"\$\{([A-Z][A-Z0-9_]*)\}", lambda m: values[m.group(1)], node)
    return node


# ---------------------------------------------------------------------------- the stack as compose runs it

def env_example_values() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            values[match.group(1)] = match.group(2)
    return values


def env_example_filled() -> dict[str, str]:
    """.env.example as a user fills it in: the required secrets set, everything else as shipped."""
    return {**env_example_values(), "POSTGRES_PASSWORD": secrets.token_hex(16),
            "ITK_SNAP_SERVER_DATABASE_PASSWORD": secrets.token_hex(16), "DSS_SECRET_KEY": secrets.token_hex(32)}


def _interpolate(value: str, dotenv: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        name, operator = match.group(1), match.group(2)
        default = match.group(0)[len(name) + 2 + len(operator or ""):-1]
        if dotenv.get(name):
            return dotenv[name]
        assert operator != ":?", f"{name} is required by compose but not set"
        return default if operator == ":-" else ""
    return INTERPOLATION.sub(replace, value)


def image_env(name: str) -> dict[str, str]:
    """The ENV of the component's Dockerfile."""
    env = {}
    for instruction in parse_dockerfile((REPO_ROOT / name / "Dockerfile").read_text()):
        if instruction.keyword == "ENV":
            env.update(env_assignments(instruction.args))
    return env


def image_command(name: str) -> list[str]:
    """The exec-form CMD of the component's Dockerfile."""
    cmd = [i for i in parse_dockerfile((REPO_ROOT / name / "Dockerfile").read_text()) if i.keyword == "CMD"][-1]
    return cmd.json_args()


def service_environment(name: str, dotenv: dict[str, str], mapping: dict[str, str]) -> dict[str, str]:
    """Image ENV, then compose's environment with .env values; `mapping` replaces container
    hosts, ports and paths by local ones."""
    env = image_env(name)
    for key, value in (load_yaml(COMPOSE_FILE)["services"][name].get("environment") or {}).items():
        if value is None:
            if dotenv.get(key):
                env[key] = dotenv[key]
        else:
            env[key] = _interpolate(str(value), dotenv)
    for key, value in env.items():
        for container_value in sorted(mapping, key=len, reverse=True):  # the most specific prefix
            if value.startswith(container_value):
                env[key] = mapping[container_value] + value[len(container_value):]
                break
    return env


def docker_context_copy(name: str, destination):
    """The files `docker build` would send for the component (what `COPY . /app` gets)."""
    context = COMPONENTS[name].context
    patterns = dockerignore_patterns(context)
    for path in context.rglob("*"):
        relative = path.relative_to(context).as_posix()
        if path.is_file() and not is_ignored(relative, patterns):
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return destination
