"""`promtool test rules` for each alert of the chart's PrometheusRule, as helm renders it.

For every alert rule there are two unit tests that promtool (Debian's `prometheus` package; installed by
scripts/install-test-deps.sh) evaluates against the rendered rule groups: series a little above the rule's
threshold, held past its `for:`, and the alert fires with its labels and annotations (the templates
rendered with the values Prometheus would give); series a little below, and it stays quiet. Where a rule
leaves traffic out (probes, duplicates), the cases add that traffic so that counting it would flip them.
A rule added to files/prometheus-rules.yaml without cases here fails `test_every_alert_has_its_cases`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.chart.conftest import NAMESPACE, render, run, tool

if TYPE_CHECKING:
    from pathlib import Path

NS = NAMESPACE
# Every input series is sampled once a minute for 40 minutes; the alerts are looked at after 30 (past each
# rule's 5 m rate window plus its `for:` of at most 10 m).
MINUTES = 40
EVAL_TIME = "30m"


def series(name: str, per_minute: float, **labels: str) -> dict[str, str]:
    """A counter growing by `per_minute` each minute (or a gauge holding it, with `per_minute` as value)."""
    selector = ",".join(f'{key}="{value}"' for key, value in {"namespace": NS, **labels}.items())
    return {"series": f"{name}{{{selector}}}", "values": f"0+{per_minute}x{MINUTES}"}


def gauge(name: str, value: float, **labels: str) -> dict[str, str]:
    selector = ",".join(f'{key}="{value}"' for key, value in {"namespace": NS, **labels}.items())
    return {"series": f"{name}{{{selector}}}", "values": f"{value}+0x{MINUTES}"}


@dataclass
class Case:
    """The series that set an alert off (`above`) and the ones that must not (`below`), and what it says."""

    above: list[dict[str, str]]
    below: list[dict[str, str]]
    labels: dict[str, str]
    summary: str


HTTP = "mcstatbot_http_requests_total"
LATENCY = "mcstatbot_http_request_duration_seconds_bucket"


def latency(bucket_of_all: str) -> list[dict[str, str]]:
    """One request a second to /v1/status, every one in the bucket ending at `bucket_of_all`; probes fast."""
    buckets = ["1", "2.5", "5", "+Inf"]
    out = []
    for le in buckets:
        slow = float(le) >= float(bucket_of_all) if le != "+Inf" else True
        out.append(series(LATENCY, 60 if slow else 0, service="query", route="/v1/status", le=le))
        # Probes are always fast and many: leaving them in would pull the p95 down.
        out.append(series(LATENCY, 600, service="query", route="/health", le=le))
    return out


CASES: dict[str, Case] = {
    "McstatbotHighErrorRate": Case(
        # 6 % of the API answers are 5xx; the /health probes (all 200) must not dilute it to under 1 %.
        above=[
            series(HTTP, 6, service="query", route="/v1/status", status="500"),
            series(HTTP, 94, service="query", route="/v1/status", status="200"),
            series(HTTP, 1000, service="query", route="/health", status="200"),
        ],
        below=[
            series(HTTP, 4, service="query", route="/v1/status", status="500"),
            series(HTTP, 96, service="query", route="/v1/status", status="200"),
        ],
        labels={"namespace": NS, "service": "query"},
        summary="query: 6% of API answers are 5xx",
    ),
    "McstatbotUpdateFailureRate": Case(
        # 6 % of the handled updates failed; counting the duplicates would make it 4 %.
        above=[
            series("mcstatbot_updates_total", 6, outcome="failed"),
            series("mcstatbot_updates_total", 94, outcome="handled"),
            series("mcstatbot_updates_total", 50, outcome="duplicate"),
        ],
        below=[
            series("mcstatbot_updates_total", 4, outcome="failed"),
            series("mcstatbot_updates_total", 96, outcome="handled"),
        ],
        labels={"namespace": NS},
        summary="bot: 6% of Telegram updates failed",
    ),
    "McstatbotQueryServiceErrorRate": Case(
        above=[
            series("mcstatbot_query_requests_total", 3, outcome="unavailable"),
            series("mcstatbot_query_requests_total", 3, outcome="short_circuited"),
            series("mcstatbot_query_requests_total", 94, outcome="ok"),
        ],
        below=[
            series("mcstatbot_query_requests_total", 2, outcome="unavailable"),
            series("mcstatbot_query_requests_total", 2, outcome="short_circuited"),
            series("mcstatbot_query_requests_total", 96, outcome="ok"),
        ],
        labels={"namespace": NS},
        summary="bot: 6% of calls to the query service failed",
    ),
    "McstatbotProbeProtocolErrors": Case(
        above=[
            series("mcstatbot_probes_total", 6, outcome="protocol"),
            series("mcstatbot_probes_total", 94, outcome="ok"),
        ],
        below=[
            series("mcstatbot_probes_total", 4, outcome="protocol"),
            series("mcstatbot_probes_total", 96, outcome="ok"),
        ],
        labels={"namespace": NS},
        summary="query: 6% of probes could not read the server's answer",
    ),
    "McstatbotHighLatencyP95": Case(
        # Every API request takes between 2.5 and 5 s: p95 is 4.875 s (linear within the bucket).
        above=latency("5"),
        below=latency("1"),
        labels={"namespace": NS, "service": "query"},
        summary="query: p95 response time is 4.875s",
    ),
    "McstatbotCircuitBreakerOpen": Case(
        above=[
            gauge("mcstatbot_circuit_breaker_state", 2, pod="bot-a"),
            gauge("mcstatbot_circuit_breaker_state", 0, pod="bot-b"),
        ],
        # Half-open (1) is the breaker trying again: not open.
        below=[gauge("mcstatbot_circuit_breaker_state", 1, pod="bot-a")],
        labels={"namespace": NS},
        summary="bot: the circuit breaker in front of the query service is open",
    ),
    "McstatbotRedisDegraded": Case(
        above=[
            gauge("mcstatbot_cache_backend_up", 0, pod="query-a"),
            gauge("mcstatbot_cache_backend_up", 1, pod="query-b"),
        ],
        below=[gauge("mcstatbot_cache_backend_up", 1, pod="query-a")],
        labels={"namespace": NS},
        summary="query: running without the Redis cache (degraded mode)",
    ),
    "McstatbotTelegramRateLimited": Case(
        # One 429 a minute: 10 in 10 minutes; 0.4 a minute is 4. Other errors do not count.
        above=[series("mcstatbot_telegram_api_errors_total", 1, kind="rate_limited")],
        below=[
            series("mcstatbot_telegram_api_errors_total", 0.4, kind="rate_limited"),
            series("mcstatbot_telegram_api_errors_total", 10, kind="bad_request"),
        ],
        labels={"namespace": NS},
        summary="bot: Telegram answered 429 (Too Many Requests) 10 times in 10 minutes",
    ),
    "McstatbotStateStoreErrors": Case(
        above=[
            series("mcstatbot_state_store_operations_total", 6, backend="dynamodb", outcome="error"),
            series("mcstatbot_state_store_operations_total", 94, backend="dynamodb", outcome="ok"),
        ],
        below=[
            series("mcstatbot_state_store_operations_total", 4, backend="dynamodb", outcome="error"),
            series("mcstatbot_state_store_operations_total", 96, backend="dynamodb", outcome="ok"),
        ],
        labels={"namespace": NS, "backend": "dynamodb"},
        summary="bot: 6% of dynamodb state-store calls fail",
    ),
}


@pytest.fixture(scope="module")
def rule_groups() -> list[dict[str, Any]]:
    """spec.groups of the PrometheusRule helm renders (metrics.prometheusRule.enabled=true)."""
    rendered = render(
        "prometheus-rule",
        "charts/mcstatbot/ci/default-values.yaml",
        sets={"metrics.prometheusRule.enabled": "true"},
    )
    (rule,) = rendered.of_kind("PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def alert_rules(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def test_every_alert_has_its_cases(rule_groups: list[dict[str, Any]]) -> None:
    assert set(alert_rules(rule_groups)) == set(CASES)


def expected_description(rule: dict[str, Any], labels: dict[str, str]) -> str:
    """The rule's description with its `{{ $labels.x }}` filled in (the descriptions use no `$value`)."""
    text = str(rule["annotations"]["description"])
    assert "$value" not in text, "a description with $value needs its expected text written out here"
    for key, value in labels.items():
        text = text.replace(f"{{{{ $labels.{key} }}}}", value)
    assert "{{" not in text, text
    return text


@pytest.mark.parametrize("alert", sorted(CASES))
def test_promtool_fires_above_the_threshold_and_stays_quiet_below(
    alert: str, rule_groups: list[dict[str, Any]], tmp_path: Path
) -> None:
    rule = alert_rules(rule_groups)[alert]
    case = CASES[alert]
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
    expected = {
        "exp_labels": {**case.labels, **{k: str(v) for k, v in rule.get("labels", {}).items()}},
        "exp_annotations": {"summary": case.summary, "description": expected_description(rule, case.labels)},
    }
    tests = {
        "rule_files": [rules_file.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": f"{alert} above its threshold",
                "interval": "1m",
                "input_series": case.above,
                "alert_rule_test": [{"eval_time": EVAL_TIME, "alertname": alert, "exp_alerts": [expected]}],
            },
            {
                "name": f"{alert} below its threshold",
                "interval": "1m",
                "input_series": case.below,
                "alert_rule_test": [{"eval_time": EVAL_TIME, "alertname": alert, "exp_alerts": []}],
            },
        ],
    }
    tests_file = tmp_path / "tests.yaml"
    tests_file.write_text(json.dumps(tests, indent=1))
    result = run([tool("promtool"), "test", "rules", str(tests_file)], cwd=tmp_path, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "SUCCESS" in result.stdout + result.stderr, result.stdout


def test_promtool_reports_an_alert_that_does_not_fire(
    rule_groups: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The harness itself: a case expecting an alert from the quiet series makes promtool fail."""
    alert = "McstatbotHighErrorRate"
    case = CASES[alert]
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
    tests = {
        "rule_files": [rules_file.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": case.below,
                "alert_rule_test": [
                    {"eval_time": EVAL_TIME, "alertname": alert, "exp_alerts": [{"exp_labels": case.labels}]}
                ],
            }
        ],
    }
    tests_file = tmp_path / "tests.yaml"
    tests_file.write_text(json.dumps(tests))
    result = run([tool("promtool"), "test", "rules", str(tests_file)], cwd=tmp_path, check=False)
    assert result.returncode != 0, result.stdout
    assert alert in result.stdout + result.stderr
