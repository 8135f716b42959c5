"""grafana/dss-dashboard.json is a valid dashboard over metrics the components really export."""
from __future__ import annotations

import ast
import json
import re

import pytest

from deploy_files import DASHBOARD_FILE
from helpers import REPO_ROOT

DASHBOARD = json.loads(DASHBOARD_FILE.read_text())
PANELS = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
# Where each metric prefix is defined.
PACKAGES = {"dss_inference_": "inference-server/dss_inference", "dss_dispatcher_": "dispatcher/dss_client/sdk",
            "dss_": "web-server/dss_server"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def test_dashboard_layout_is_valid():
    assert DASHBOARD["uid"] and DASHBOARD["title"] and DASHBOARD["schemaVersion"] >= 30
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
    assert [v["name"] for v in DASHBOARD["templating"]["list"]] == ["datasource"]


@pytest.mark.parametrize("panel", PANELS, ids=lambda p: p["title"])
def test_panel_queries_use_the_datasource_variable(panel):
    assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"]
    ref_ids = [t["refId"] for t in panel["targets"]]
    assert len(ref_ids) == len(set(ref_ids))
    for target in panel["targets"]:
        assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_every_area_the_issue_names_is_charted():
    names = metrics_in_dashboard()
    for required in ("dss_tickets", "dss_queue_depth", "dss_claim_duration_seconds_bucket",
                     "dss_ticket_duration_seconds_bucket", "dss_http_request_duration_seconds_bucket",
                     "dss_inference_jobs_total", "dss_inference_gpu_memory_allocated_bytes",
                     "dss_inference_stage_seconds_bucket", "dss_dispatcher_tickets_total",
                     "dss_dispatcher_stage_seconds_bucket"):
        assert required in names


@pytest.mark.parametrize("prefix", ["dss_inference_", "dss_dispatcher_", "dss_"])
def test_dashboard_metrics_are_exported_by_the_components(prefix):
    package = REPO_ROOT / PACKAGES[prefix]
    if not (package / "metrics.py").exists():
        pytest.skip(f"{PACKAGES[prefix]}/metrics.py not written yet")
    defined = metric_names_defined(package)
    wanted = {name for name in metrics_in_dashboard() if name.startswith(prefix)
              and not any(name.startswith(p) for p in PACKAGES if len(p) > len(prefix))}
    missing = sorted(name for name in wanted if not _exported(name, defined))
    assert not missing, f"the dashboard charts {missing}, which {PACKAGES[prefix]} never defines"


def metrics_in_dashboard() -> set[str]:
    exprs = " ".join(t["expr"] for p in PANELS for t in p["targets"])
    return set(re.findall(r"\bdss_[a-z0-9_]+", exprs))


def metric_names_defined(package) -> set[str]:
    """String literals that look like metric names, in the package's modules."""
    names = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"dss_[a-z0-9_]+", node.value):
                names.add(node.value)
    return names


def _exported(name: str, defined: set[str]) -> bool:
    """prometheus_client adds _total to counters and _bucket/_sum/_count to histograms."""
    candidates = {name}
    for suffix in HISTOGRAM_SUFFIXES + ("_total",):
        if name.endswith(suffix):
            candidates.add(name[: -len(suffix)])
    return bool(candidates & defined)
