"""Lab 4, exercise `alert-rules`: alert rules as code, and the promtool tests that prove them.

    make lab-4        grade it          make hint-4      one more hint
    Reference: reference/mlops_lab/monitoring/alerts.py     Docs: docs/labs/lab-4-observability.md

Two ML alerts must page whatever else happens: the model got worse on labelled data, and the
monitor that would tell you so is dead. Written as code with parameters (as Prometheus
monitoring mixins and Sloth do), rendered to YAML, committed and unit-tested with promtool.
You write:

  performance_drop_alert  realized precision under ratio x the expected, on enough labels, for for_
  monitor_down_alert      the monitor does not answer scrapes, or its target is gone altogether
  rule_tests              the promtool test cases that prove both: when they fire, when they must not

The grader renders rule_group() and runs `promtool check rules` on it, then its own hidden
promtool tests on your rules; then YOUR rule_tests() on your rules (they must pass) and on a few
broken rules it holds (they must fail: tests that let a broken rule through are not tests).

What they work with (the reference's, imported below):

    A rule is a dict, as in a rules file: {"alert": name, "expr": PromQL text, "for": "10m",
        "labels": {"severity": "page"}, "annotations": {"summary": ..., "description": ...}}.
        Keep annotations free of {{ templates }}: fires() expects them verbatim.
    PERFORMANCE_DROP, MONITOR_DOWN   the alerts' names; GROUP the group's
    REALIZED_PRECISION, EXPECTED_PRECISION, LABELLED_ROWS   the monitor's gauges (one series
        each per monitor, labels job and instance); a precision is NaN when it is undefined
    MONITOR_JOB  "monitor", the scrape job; LAST_WINDOW a gauge the monitor always exports
    series(metric, values, **labels)    one input series, promtool's notation: "0.1+0x30" is 31
        samples of 0.1, "1 1 0+0x10" up then down, "1 1 stale" a target that disappears
    precision(realized, expected, labelled, instance)   the three gauges of one monitor
    fires(rule, "11m", **labels)  quiet(rule, "9m")   alert_rule_test checks
    case(input_series, checks)    one test case, sampled every minute (evaluation every minute)
    render_rules(group), render_tests(cases, rule_files)   the YAML files
    promtool_test(group, cases) -> (passed, output)   run your tests on your rules right now
    python -m mlops_lab.monitoring.alerts --print    the reference's rules and tests, as YAML
"""

from __future__ import annotations

from typing import Any

from mlops_lab.monitoring.alerts import (
    EXPECTED_PRECISION,
    GROUP,
    LABELLED_ROWS,
    LAST_WINDOW,
    MONITOR_DOWN,
    MONITOR_JOB,
    PERFORMANCE_DROP,
    REALIZED_PRECISION,
    Rule,
    TestCase,
    case,
    fires,
    precision,
    promtool_test,
    quiet,
    render_rules,
    render_tests,
    series,
)


def performance_drop_alert(ratio: float = 0.8, min_labelled: int = 200, for_: str = "10m") -> Rule:
    """Pages when realized precision stays under `ratio` x the expected one, on enough labels."""
    # TODO(lab-4): the rule dict named PERFORMANCE_DROP, severity "page", a summary and a
    #  description (what it means, "Look at:" what, "Do:" what), and `for_` as its "for".
    #  expr: realized precision below ratio x expected precision, and at least min_labelled
    #  labelled rows behind it. Use the parameters: the grader builds it with other values.
    #  - An undefined precision (NaN) must never fire: which way of writing it keeps that true?
    #  Think about: labels arrive days late; what does a precision on 30 labels tell you, and
    #  what does `for` protect you from?
    raise NotImplementedError("TODO(lab-4): the realized performance drop alert")


def monitor_down_alert(job: str = MONITOR_JOB, for_: str = "5m") -> Rule:
    """Pages when Prometheus gets nothing from the monitor: scrapes fail, or the target is gone."""
    # TODO(lab-4): the rule dict named MONITOR_DOWN, severity "page", summary, description and
    #  `for_`, for the scrape job `job`: it fires when the monitor's `up` is 0 (listed, not
    #  answering) AND when there is no `up` series of that job at all (the pod is gone, service
    #  discovery lists nothing). Other jobs being down is not this alert's business.
    #  Think about: what does `up{job="monitor"} == 0` return when no monitor target exists, and
    #  what then happens to every alert written on the monitor's metrics?
    raise NotImplementedError("TODO(lab-4): the monitor down alert")


def rule_group() -> dict[str, Any]:
    """The rule group Prometheus loads (rules/ml-signals.yml), with the default parameters."""
    return {"name": GROUP, "rules": [performance_drop_alert(), monitor_down_alert()]}


def rule_tests() -> list[TestCase]:
    """promtool test cases for rule_group(): each alert fires when it must and stays quiet when
    it must not, including the mistakes a rule is most likely to have."""
    # TODO(lab-4): a list of case(...)s for the default rules, built with series/precision and
    #  checked with fires/quiet. They must pass on your rules and fail on a rule that:
    #  - has no labelled-rows guard (a drop on too few labels must stay quiet),
    #  - fires when precision is NaN (with enough labels, so only the NaN keeps it quiet),
    #  - has no `for` (check quiet before the drop has held for 10 minutes),
    #  - never fires (check a real drop does page, with the labels it carries),
    #  - sees up == 0 but not a target that is gone (up disappears: the alert still pages),
    #  - fires while the monitor is up.
    #  Think about: a test that never expects silence passes a rule that always fires; a test
    #  that never expects an alert passes one that never does. Which does each case rule out?
    raise NotImplementedError("TODO(lab-4): promtool tests for both alerts")
