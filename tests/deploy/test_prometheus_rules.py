"""deploy/prometheus: the alert rules and the example scrape config pass promtool, every alert has unit tests
that pass (`promtool test rules`), and the rules name only series the service exports."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.promql import PROMETHEUS_OWN, RULES, RULES_TEST, SCRAPE_CONFIG, metric_names, rules
from tests.support.prometheus import binary


@pytest.fixture(scope="module")
def promtool() -> str:
    return binary("promtool")


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60, check=False)


def test_rules_and_config_pass_promtool_checks(promtool: str) -> None:
    checked = run(promtool, "check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout
    # the example config, with the rule files it names (relative to it): rules.yml
    config = run(promtool, "check", "config", SCRAPE_CONFIG)
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout


def test_the_rules_unit_tests_pass(promtool: str) -> None:
    done = run(promtool, "test", "rules", RULES_TEST)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_unit_tests_would_catch_a_changed_threshold(promtool: str, tmp_path: Path) -> None:
    """The unit tests are not vacuous: the same tests against rules whose error-rate threshold moved fail."""
    (tmp_path / "rules.yml").write_text(RULES.read_text().replace("> 0.05", "> 0.5"))
    (tmp_path / "rules_test.yml").write_text(RULES_TEST.read_text())
    done = run(promtool, "test", "rules", tmp_path / "rules_test.yml")
    assert done.returncode != 0
    assert "GamerecHighErrorRate" in done.stdout + done.stderr


def test_every_alert_has_a_firing_unit_test() -> None:
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts >= {
        "GamerecHighErrorRate",
        "GamerecHighP99Latency",
        "GamerecNoModelLoaded",
        "GamerecModelStale",
        "GamerecEventIngestionStopped",
        "GamerecExperimentGuardrailTripped",
    }
    cases = [case for test in yaml.safe_load(RULES_TEST.read_text())["tests"] for case in test["alert_rule_test"]]
    tested = {case["alertname"] for case in cases}
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    assert alerts - tested == set(), "alerts without a unit test in rules_test.yml"
    assert alerts - firing == set(), "alerts never expected to fire in rules_test.yml"
    assert tested - alerts == set(), "rules_test.yml tests alerts rules.yml does not define"


def test_rules_name_only_exported_series(exported_series: frozenset[str]) -> None:
    for rule in rules():
        names = metric_names(rule["expr"])
        assert names, f"{rule.get('alert')}: no metric found in {rule['expr']!r}"
        missing = names - exported_series - PROMETHEUS_OWN
        assert missing == set(), f"{rule.get('alert')} names series the service does not export: {sorted(missing)}"
