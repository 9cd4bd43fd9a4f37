"""What the deploy/ files ask of the service: the metric names in PromQL expressions (Grafana's variables
substituted) and the series names a /metrics scrape and the prometheus_client registry provide."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml
from prometheus_client.metrics_core import Metric

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "gamerec.json"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "rules_test.yml"
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"

# Series Prometheus itself adds to every target.
PROMETHEUS_OWN = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"})
# The sample names of a family, by type (a counter `x` is stored as `x_total` and `x_created`).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "info": ("_info",),
}
# Values for the dashboard's variables, so that an expression is plain PromQL promtool can parse.
GRAFANA_VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "6h", "window": "1h", "job": ".+"}

_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
# A name not inside a number (1e3, 5m) and not a function call.
_NAME = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*+)(?!\s*\()")
_KEYWORDS = frozenset({"and", "or", "unless", "offset", "bool", "inf", "nan"})
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,")


def substitute(expr: str) -> str:
    """The expression with Grafana's variables replaced; an unknown variable is an error (give it a value here)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in GRAFANA_VARIABLES:
            raise KeyError(f"unknown dashboard variable ${name} in {expr!r}")
        return GRAFANA_VARIABLES[name]

    return _VARIABLE.sub(value, expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (bare names; `{__name__=...}` selectors are not used here)."""
    text = _STRING.sub('""', substitute(expr))
    text = _MATCHERS.sub("{}", text)
    text = _RANGE.sub("[]", text)
    while (stripped := _GROUPING.sub("", text)) != text:
        text = stripped
    return {name for name in _NAME.findall(text) if name.lower() not in _KEYWORDS}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(board: dict) -> Iterator[dict]:
    """Every panel, those inside collapsed rows too."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(board: dict) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable (its `label_values(metric, ...)` as the
    bare metric selector)."""
    queries = [
        (f"panel {panel['id']} {panel['title']!r} target {target.get('refId')}", target["expr"])
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = _LABEL_VALUES.search(query)
        queries.append((f"variable ${variable['name']}", match.group(1) if match else query))
    return queries


def rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def series_names(families: Iterable[Metric]) -> set[str]:
    """Every series name the families can store: their samples' names and, for a family without samples yet
    (a labelled metric nothing has counted), the names its type gives."""
    names: set[str] = set()
    for family in families:
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names
