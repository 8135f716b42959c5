"""Every Dockerfile parses, builds from its own folder only, and follows the house rules."""
from __future__ import annotations

import ast
import re
import shlex

import pytest

from deploy_files import (
    DOCKERFILE_CONTEXTS,
    DockerfileError,
    copy_sources,
    dockerignore_patterns,
    env_assignments,
    is_ignored,
    parse_dockerfile,
)

CONTEXTS = {context.name: context for context in DOCKERFILE_CONTEXTS}
# What each image serves and where its data lives (the seed's mount points).
EXPECTED = {
    "web-server": {"port": "8080", "volume": "/app/datastore"},
    "dispatcher": {"port": "9100", "volume": "/datastore"},
    "inference-server": {"port": "8080", "volume": "/wmlce/data/output"},
    "db": {"port": "5432", "volume": "/var/lib/postgresql/data"},
}


def instructions(name: str):
    return parse_dockerfile((CONTEXTS[name] / "Dockerfile").read_text())


def keyword_args(name: str, keyword: str) -> list[str]:
    return [i.args for i in instructions(name) if i.keyword == keyword]


@pytest.mark.parametrize("name", CONTEXTS)
def test_dockerfile_parses(name):
    assert instructions(name)[0].keyword in ("FROM", "ARG")


def test_parser_rejects_broken_dockerfiles():
    with pytest.raises(DockerfileError, match="unknown instruction"):
        parse_dockerfile("FROM python:3.11\nRUNN echo\n")
    with pytest.raises(DockerfileError, match="continuation"):
        parse_dockerfile("FROM python:3.11\nRUN echo \\\n")
    with pytest.raises(DockerfileError, match="must start with FROM"):
        parse_dockerfile("RUN echo hi\n")


def test_parser_joins_continuations_and_skips_comment_lines():
    parsed = parse_dockerfile("FROM a:1\nRUN one \\\n# comment inside\n    && two\n")
    assert parsed[1].args == "one && two" and parsed[1].line == 2


@pytest.mark.parametrize("name", CONTEXTS)
def test_base_images_are_pinned(name):
    for image in keyword_args(name, "FROM"):
        reference = image.split()[0]
        assert "@sha256:" in reference or re.search(r":[\w.-]+$", reference), reference
        assert not reference.endswith(":latest"), reference


@pytest.mark.parametrize("name", CONTEXTS)
def test_copy_sources_exist_in_the_context_and_are_not_ignored(name):
    context, patterns = CONTEXTS[name], dockerignore_patterns(CONTEXTS[name])
    for instruction in instructions(name):
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        for source in copy_sources(instruction):
            assert "://" not in source, f"line {instruction.line}: nothing is downloaded at build via ADD"
            path = (context / source).resolve()
            assert path.is_relative_to(context.resolve()), f"{source} leaves the build context"
            assert path.exists(), f"{name}/Dockerfile line {instruction.line}: {source} missing"
            if source not in (".", "./"):
                assert not is_ignored(source.rstrip("/"), patterns), f"{source} is in .dockerignore"


@pytest.mark.parametrize("name", CONTEXTS)
def test_runs_as_non_root_with_healthcheck_port_and_volume(name):
    users = keyword_args(name, "USER")
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    healthchecks = keyword_args(name, "HEALTHCHECK")
    assert len(healthchecks) == 1 and "CMD" in healthchecks[0]
    assert EXPECTED[name]["port"] in " ".join(keyword_args(name, "EXPOSE")).split()
    assert EXPECTED[name]["volume"] in " ".join(keyword_args(name, "VOLUME"))


@pytest.mark.parametrize("name", ["web-server", "dispatcher", "inference-server"])
def test_component_images_suit_openshift_arbitrary_uids(name):
    """Restricted SCC: a random UID in group 0, so written folders must be group-0 writable."""
    assert keyword_args(name, "USER")[-1] == "1001"
    runs = " ".join(keyword_args(name, "RUN"))
    assert "chgrp -R 0" in runs and "chmod -R g=u" in runs
    assert EXPECTED[name]["volume"] in runs, "the data folder must be created group-0 writable"


@pytest.mark.parametrize("name", ["web-server", "dispatcher", "inference-server"])
def test_requirements_are_pinned_and_installed(name):
    requirements = CONTEXTS[name] / "requirements.txt"
    for line in requirements.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\[\],-]+==[\w.+-]+", line), f"{requirements}: {line!r} is not pinned"
    runs = keyword_args(name, "RUN")
    assert any("pip install -r /tmp/requirements.txt" in run for run in runs)
    assert any("pip install --no-deps /app" in run for run in runs), "only the pinned dependencies"


def test_web_server_image_has_git_migrates_and_serves_with_gunicorn_gthread():
    assert "git" in " ".join(keyword_args("web-server", "RUN")).split()
    command = " ".join(_command("web-server"))
    assert command.startswith("env -u PROMETHEUS_MULTIPROC_DIR python -m dss_server migrate && ")
    assert command.endswith(" && exec gunicorn -c gunicorn.conf.py dss_server.wsgi:app")
    env = _env("web-server")
    assert env["DSS_DATASTORE"] == "/app/datastore" and env["PORT"] == "8080"
    # gunicorn's workers share their metrics through this folder, emptied before they start.
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    assert "rm -rf $PROMETHEUS_MULTIPROC_DIR && mkdir -p $PROMETHEUS_MULTIPROC_DIR" in command


def test_inference_image_is_cuda_based_and_listens_on_8080():
    assert keyword_args("inference-server", "FROM")[0].startswith(("nvidia/cuda:", "pytorch/pytorch:"))
    env = _env("inference-server")
    assert env["INFERENCE_PORT"] == "8080" and env["INFERENCE_OUTPUT_DIR"] == "/wmlce/data/output"
    assert _command("inference-server")[:3] == ["gunicorn", "-c", "gunicorn.conf.py"]


def test_dispatcher_image_runs_the_daemon():
    assert _command("dispatcher") == ["python", "-m", "dss_dispatcher"]


def test_db_image_creates_the_seed_database_through_an_init_script():
    assert keyword_args("db", "FROM")[0].startswith("postgres:16")
    assert "initdb/ /docker-entrypoint-initdb.d/" in keyword_args("db", "COPY")
    script = (CONTEXTS["db"] / "initdb" / "10-dss-database.sh").read_text()
    assert "admin_db" in script and "admin_user" in script
    assert "CREATE TABLE" not in script.upper(), "the schema comes from the web server's migrations"


@pytest.mark.parametrize("name", ["web-server", "dispatcher", "inference-server"])
def test_entry_point_files_exist_and_are_not_ignored(name):
    context, patterns = CONTEXTS[name], dockerignore_patterns(CONTEXTS[name])
    for relative in _entry_point_files(_command(name)):
        if not (context / relative).exists():
            pytest.skip(f"entry point not written yet: {name}/{relative}")
        assert not is_ignored(relative, patterns), f"{relative} is in .dockerignore"


def _command(name: str) -> list[str]:
    cmd = [i for i in instructions(name) if i.keyword == "CMD"][-1]
    args = cmd.json_args()
    assert args is not None, "CMD uses the exec form, so signals reach the server"
    return shlex.split(args[2]) if args[:2] == ["sh", "-c"] else args


def _env(name: str) -> dict[str, str]:
    merged = {}
    for args in keyword_args(name, "ENV"):
        merged.update(env_assignments(args))
    return merged


def _entry_point_files(command: list[str]) -> list[str]:
    """Files the command names: `x.py`, `python -m pkg`, gunicorn's `pkg.module:app`."""
    files = []
    for index, token in enumerate(command):
        if token.endswith(".py"):
            files.append(token)
        elif index and command[index - 1] == "-m":
            files.append(token.replace(".", "/") + "/__main__.py")
        elif re.fullmatch(r"[\w.]+:[\w]+(\(\))?", token):
            module = token.split(":")[0].replace(".", "/")
            files.append(module + ".py" if "/" in module else module + "/__init__.py")
    return files


@pytest.mark.parametrize("name", ["web-server", "inference-server"])
def test_gunicorn_uses_threaded_workers(name):
    """Long uploads must not be taken for hung sync workers and killed."""
    path = CONTEXTS[name] / "gunicorn.conf.py"
    if not path.exists():
        pytest.skip(f"entry point not written yet: {name}/gunicorn.conf.py")
    settings = {target.id: node.value for node in ast.parse(path.read_text()).body
                if isinstance(node, ast.Assign) for target in node.targets if isinstance(target, ast.Name)}
    worker_class = ast.literal_eval(settings["worker_class"])
    if worker_class != "gthread":  # the web server's gthread with read timeouts
        from gunicorn.util import load_class
        from gunicorn.workers.gthread import ThreadWorker
        assert issubclass(load_class(worker_class), ThreadWorker)
    assert ast.literal_eval(settings["threads"]) > 1
    if name == "inference-server":  # the job pool and the models live in one process
        assert ast.literal_eval(settings["workers"]) == 1
