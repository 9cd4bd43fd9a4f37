"""deploy/grafana/gamerec.json: valid JSON Grafana imports, every query valid PromQL (promtool), and every metric it
names one the service exports, so that a renamed metric cannot leave a dead panel."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.deploy.promql import (
    PROMETHEUS_OWN,
    dashboard,
    dashboard_queries,
    metric_names,
    panels,
    substitute,
)
from tests.support.prometheus import binary


def test_metric_names_reads_promql() -> None:
    """The name extractor the checks below stand on: selectors, not functions, labels, durations or keywords."""
    expr = (
        'histogram_quantile(0.99, sum by (le, path) (rate(gamerec_http_request_duration_seconds_bucket{job=~"$job",'
        ' path!~"/readyz|/x"}[$__rate_interval]))) > 1e3 and on (job) time() - gamerec_model_info offset 5m'
        " or sum without (pid) (x:recorded:rate5m) unless count(up == bool 1) by (instance)"
    )
    assert metric_names(expr) == {
        "gamerec_http_request_duration_seconds_bucket",
        "gamerec_model_info",
        "x:recorded:rate5m",
        "up",
    }


def test_dashboard_is_an_importable_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    every = list(panels(board))
    ids = [p["id"] for p in every]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    shown = [p for p in every if p["type"] != "row"]
    for panel in shown:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
    # on the 24-column grid, no panel over another
    boxes = [(p["gridPos"]["x"], p["gridPos"]["y"], p["gridPos"]["w"], p["gridPos"]["h"], p["title"]) for p in every]
    for i, (x, y, w, h, title) in enumerate(boxes):
        assert x >= 0 and x + w <= 24, title
        for x2, y2, w2, h2, other in boxes[i + 1 :]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, f"{title!r} overlaps {other!r}"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    # what the issue asks the dashboard to show, one panel each
    titles = {p["title"] for p in shown}
    assert titles >= {
        "Request rate",
        "Latency percentiles",
        "Errors",
        "Answers by source",
        "Events by type",
        "CTR by variant",
        "Conversion by variant",
        "Model version served",
        "Reloads",
        "Overlay size",
    }


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """Each query, its variables given values, as a recording rule: `promtool check rules` parses them all."""
    queries = dashboard_queries(dashboard())
    record = [{"record": f"dashboard:query_{i}", "expr": substitute(expr)} for i, (_, expr) in enumerate(queries)]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": record}]}))
    done = subprocess.run(
        [binary("promtool"), "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(record)} rules found" in done.stdout


def test_every_dashboard_metric_is_exported(exported_series: frozenset[str]) -> None:
    used: set[str] = set()
    for where, expr in dashboard_queries(dashboard()):
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        missing = names - exported_series - PROMETHEUS_OWN
        assert missing == set(), f"{where} names series the service does not export: {sorted(missing)}"
        used |= names
    # the experiment and overlay families are on it (labelled counters with no sample outside an experiment)
    assert {"gamerec_events_attributed_total", "gamerec_variant_request_duration_seconds_bucket"} <= used
    assert {"gamerec_overlay_users", "gamerec_model_reloads_total", "gamerec_predictions_total"} <= used


def test_a_renamed_metric_is_caught(exported_series: frozenset[str]) -> None:
    """The check above fails for a panel whose metric was renamed in the service."""
    renamed = 'sum(rate(gamerec_answers_total{job=~"$job"}[$__rate_interval]))'
    assert metric_names(renamed) - exported_series == {"gamerec_answers_total"}
