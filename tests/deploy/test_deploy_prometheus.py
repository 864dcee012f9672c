"""The Prometheus side of the deployment kit: the alerting rules pass their unit tests
(`promtool test rules`: each rule firing and not firing), the kit's Prometheus configuration
loads them, they query only metrics the service exports, and docs/operations.md names the same
rules as the file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from deploy_kit import PROMETHEUS_CONFIG, REPO, RULES_FILE, load_yaml
from wa_outbound.metrics import Metrics

RULE_TESTS = Path(__file__).with_name("prometheus_rules_test.yml")
OPERATIONS = REPO / "docs" / "operations.md"
_METRIC = re.compile(r"\boutbound_[a-z0-9_]+")
_SERIES_SUFFIX = re.compile(r"_(total|bucket|sum|count)$")


def promtool_run(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def rules() -> list[dict[str, str]]:
    return [rule for group in load_yaml(RULES_FILE)["groups"] for rule in group["rules"]]


def test_the_alerting_rules_pass_their_unit_tests(promtool: str) -> None:
    result = promtool_run(promtool, "test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_rule_is_unit_tested_firing_and_not_firing() -> None:
    expected: dict[str, set[bool]] = {rule["alert"]: set() for rule in rules()}
    for case in load_yaml(RULE_TESTS)["tests"]:
        for check in case["alert_rule_test"]:
            expected[check["alertname"]].add(bool(check["exp_alerts"]))
    assert {name: seen for name, seen in expected.items() if seen != {True, False}} == {}


def test_a_wrong_expectation_fails_the_unit_tests(promtool: str, tmp_path: Path) -> None:
    # promtool really compares: the same tests expecting another figure fail.
    text = RULE_TESTS.read_text().replace("../../deploy/", f"{REPO}/deploy/")
    wrong = tmp_path / "rules_test.yml"
    wrong.write_text(text.replace('"1100 messages waiting', '"1101 messages waiting'))
    result = promtool_run(promtool, "test", "rules", wrong)
    assert result.returncode != 0
    assert "1101 messages waiting" in result.stdout + result.stderr


def test_the_kit_s_prometheus_configuration_is_valid_and_loads_the_rules(promtool: str) -> None:
    result = promtool_run(promtool, "check", "config", PROMETHEUS_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules())} rules found" in result.stdout


def test_the_rules_query_only_metrics_the_service_exports() -> None:
    families = {family.name for family in Metrics().registry.collect()}
    used = {name for rule in rules() for name in _METRIC.findall(rule["expr"])}
    assert used
    assert {name for name in used if _SERIES_SUFFIX.sub("", name) not in families} == set()


def test_the_scrape_rules_watch_the_kit_s_scrape_job() -> None:
    jobs = {job["job_name"] for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    watched = {job for rule in rules() for job in re.findall(r'job="([^"]+)"', rule["expr"])}
    assert watched == {"wa-outbound"}
    assert watched <= jobs


def test_the_operations_guide_points_to_the_rules_file_and_names_its_rules() -> None:
    text = OPERATIONS.read_text()
    section = text.split("### Prometheus alerting rules", 1)[1].split("\n## ", 1)[0]
    assert str(RULES_FILE.relative_to(REPO)) in section
    assert "```yaml" not in section  # one copy of the rules: the file
    assert set(re.findall(r"`(WaOutbound\w+)`", section)) == {rule["alert"] for rule in rules()}
