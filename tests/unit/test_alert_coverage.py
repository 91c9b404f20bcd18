"""The alert coverage page (docs/alert-coverage.md) says only what is true, and says it of everything.

Every row's proof exists (a pytest test, a lab scenario, an alert's promtool test), every alert and
metric it names exists, and every failure mode the project knows has a row: the generator's
scenarios, the scenarios in labs/labs.toml and the alert rules. So a new scenario or alert without a
row fails here, and so does a row whose proof was renamed away. Files are parsed; nothing runs.
"""

from __future__ import annotations

import ast
import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlops_lab.data.generator import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "alert-coverage.md"
OBS = ROOT / "reference" / "observability"
HEADER = ("Id", "Failure mode", "Kind", "Signal", "Proof")
KINDS = {"alert", "verdict", "guarantee", "quiet", "gap"}

ROW_ID = re.compile(r"^[a-z0-9]+/[a-z0-9_-]+$")
PROMTOOL = re.compile(r"^rules/(?P<file>[\w.-]+\.yml)::(?P<alert>\w+)$")
PYTEST = re.compile(r"^(?P<file>(?:tests|labs)/[\w/.-]+\.py)::(?P<name>[\w:]+?)(?:\[.+\])?$")
SCENARIO = re.compile(r"^lab\d+/[a-z0-9-]+$")
ALERT = re.compile(r"\b(MLOps[A-Z]\w+)`?(?: \((page|ticket)\))?")
METRIC = re.compile(r"\b(mlops_[a-z0-9_]+)")


@dataclass(frozen=True)
class Row:
    ids: tuple[str, ...]
    kind: str
    signal: str
    proofs: tuple[str, ...]
    line: int

    def __str__(self) -> str:
        return f"docs/alert-coverage.md:{self.line} ({', '.join(self.ids)})"


def _code(cell: str) -> tuple[str, ...]:
    return tuple(re.findall(r"`([^`]+)`", cell))


@functools.cache
def rows() -> tuple[Row, ...]:
    """The rows of every table on the page whose header is HEADER."""
    out: list[Row] = []
    in_table = False
    for number, line in enumerate(PAGE.read_text().splitlines(), start=1):
        cells = tuple(c.strip() for c in line.strip().strip("|").split("|")) if line.startswith("|") else ()
        if cells == HEADER:
            in_table = True
        elif not cells:
            in_table = False
        elif in_table and not set(line) <= set("|-: "):
            assert len(cells) == len(HEADER), f"line {number}: {len(cells)} cells (a '|' inside a cell?)"
            ids, _, kind, signal, proof = cells
            out.append(Row(_code(ids), kind, signal, _code(proof), number))
    return tuple(out)


@functools.cache
def alert_rules() -> dict[str, tuple[str, str]]:
    """alertname -> (rules file name, severity) for every rule in reference/observability/rules."""
    out = {}
    for path in sorted((OBS / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out[rule["alert"]] = (path.name, rule["labels"]["severity"])
    return out


@functools.cache
def promtool_tested() -> frozenset[tuple[str, str]]:
    """(rules file name, alertname) for every alert that a promtool test file checks."""
    out = set()
    for path in (OBS / "tests").glob("*.yml"):
        spec = yaml.safe_load(path.read_text())
        files = {Path(f).name for f in spec.get("rule_files", [])}
        for case in spec.get("tests", []):
            for check in case.get("alert_rule_test", []):
                out |= {(f, check["alertname"]) for f in files}
    return frozenset(out)


@functools.cache
def _test_functions(path: Path) -> frozenset[str]:
    """The test functions of a pytest file: `name` at module level, `Class::name` in a class."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names |= {
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            }
    return frozenset(n for n in names if n.split("::")[-1].startswith("test_"))


@functools.cache
def lab_scenarios() -> frozenset[str]:
    labs = tomllib.loads((ROOT / "labs" / "labs.toml").read_text())["lab"]
    return frozenset(f"lab{lab['id']}/{s['id']}" for lab in labs for s in lab.get("scenario", []))


@functools.cache
def known_metrics() -> frozenset[str]:
    """Every mlops_* name in the reference sources (the exporters), the way the rules' test reads them."""
    found: set[str] = set()
    for path in (ROOT / "reference" / "mlops_lab").rglob("*.py"):
        found |= set(METRIC.findall(path.read_text()))
    return frozenset(found)


def proof_problem(proof: str) -> str | None:
    """Why a proof does not exist, or None when it does."""
    if m := PROMTOOL.match(proof):
        rule = alert_rules().get(m["alert"])
        if rule is None or rule[0] != m["file"]:
            return f"{proof}: no alert {m['alert']} in reference/observability/rules/{m['file']}"
        if (m["file"], m["alert"]) not in promtool_tested():
            return f"{proof}: no promtool test in reference/observability/tests/ checks it"
        return None
    if m := PYTEST.match(proof):
        path = ROOT / m["file"]
        if not path.is_file():
            return f"{proof}: no file {m['file']}"
        return None if m["name"] in _test_functions(path) else f"{proof}: no test {m['name']} in {m['file']}"
    if SCENARIO.match(proof):
        return None if proof in lab_scenarios() else f"{proof}: no such scenario in labs/labs.toml"
    return f"{proof}: not a proof (file.py::test, labN/<id> or rules/<file>.yml::<Alert>)"


def covered_ids() -> set[str]:
    return {i for row in rows() for i in row.ids}


def test_every_row_is_well_formed() -> None:
    """Ids are area/name and unique, the kind is one of KINDS, and every row has a proof."""
    assert len(rows()) >= 30, "the page's tables were not found: is the header still " + " | ".join(HEADER)
    seen: set[str] = set()
    for row in rows():
        assert row.ids, f"{row}: no id"
        for i in row.ids:
            assert ROW_ID.match(i), f"{row}: id {i!r} is not area/name"
            assert i not in seen, f"{row}: id {i} has two rows"
            seen.add(i)
        assert row.kind in KINDS, f"{row}: kind {row.kind!r}, expected one of {sorted(KINDS)}"
        assert row.proofs, f"{row}: no proof"


def test_every_proof_exists() -> None:
    problems = [f"{row}: {p}" for row in rows() for proof in row.proofs if (p := proof_problem(proof))]
    assert problems == [], "\n".join(problems)


def test_every_generator_scenario_has_a_row() -> None:
    missing = {f"data/{s}" for s in SCENARIOS} - covered_ids()
    assert missing == set(), f"docs/alert-coverage.md: add a row for {sorted(missing)}"


def test_every_lab_scenario_has_a_row() -> None:
    missing = lab_scenarios() - covered_ids()
    assert missing == set(), f"docs/alert-coverage.md: add a row for {sorted(missing)}"


def test_every_alert_rule_has_a_row() -> None:
    named = {name for row in rows() for name, _ in ALERT.findall(row.signal)}
    missing = set(alert_rules()) - named
    assert missing == set(), f"docs/alert-coverage.md: no row names the alerts {sorted(missing)}"


def test_every_alert_named_exists_with_its_severity_and_its_promtool_test_in_the_row() -> None:
    problems = []
    for row in rows():
        names = ALERT.findall(row.signal)
        if row.kind == "alert" and not names:
            problems.append(f"{row}: kind alert, but its signal names no alert")
        for name, severity in names:
            if name not in alert_rules():
                problems.append(f"{row}: {name} is not an alert in reference/observability/rules")
                continue
            file, actual = alert_rules()[name]
            if severity and severity != actual:
                problems.append(f"{row}: {name} is a {actual}, the page says {severity}")
            if f"rules/{file}::{name}" not in row.proofs:
                problems.append(f"{row}: add the proof `rules/{file}::{name}`")
    assert problems == [], "\n".join(problems)


def test_every_metric_named_is_exported() -> None:
    suffix = re.compile(r"_(bucket|count|sum|total)$")
    problems = [
        f"{row}: {metric} is exported by no component"
        for row in rows()
        for metric in METRIC.findall(row.signal)
        if metric not in known_metrics() and suffix.sub("", metric) not in known_metrics()
    ]
    assert problems == [], "\n".join(problems)


def test_every_gap_is_listed_with_what_would_close_it() -> None:
    text = PAGE.read_text()
    assert "\n## Known gaps\n" in text, "docs/alert-coverage.md: the Known gaps section is gone"
    gaps = text.split("\n## Known gaps\n", 1)[1]
    listed = set(re.findall(r"^- `([^`]+)`", gaps, re.M))
    expected = {i for row in rows() if row.kind == "gap" for i in row.ids}
    assert listed == expected, f"Known gaps lists {sorted(listed)}, the gap rows are {sorted(expected)}"
