"""How fast a learner hears back: the lab runner's feedback times, as a learner meets them.

    python -m mlops_lab.bench.labs        # part of make bench -> var/bench/labs.{json,md}

Every figure is one real `mlops-lab lab check` command (a fresh process, as `make lab-N`
runs it) on a copy of the pristine skeletons under a temporary folder, so the learner's own
exercises and progress are never touched:

  first feedback     the untouched skeleton of each lab: how long until the first failure
  re-grade (no server)  the same again: the exercise being worked on is graded once more
  re-grade (server)  the exercises before it solved (their labs/solutions in place), the current one
                     is lab 1's slo-check, whose grader starts a real server and a load test
  whole lab          every exercise of each lab on the reference (`--impl reference`)

Next to them, in the same run, the time of `python -c pass` (the baseline) and the start-up of
`mlops-lab --help` and `mlops-lab lab status`: what any command pays before its work starts.
Goals: the CLI's start-up <= 0.5 s, first feedback and a server-free re-grade <= 5 s, a re-grade
with a server <= 15 s, a whole lab on the reference <= 30 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlops_lab.bench.report import write_outputs
from mlops_lab.labs.manifest import Lab, load_manifest, repo_root
from mlops_lab.labs.verify import materialize

GOALS_S = {
    "cli start-up": 0.5,
    "first feedback": 5.0,
    "re-grade (no server)": 5.0,
    "re-grade (server)": 15.0,
    "whole lab": 30.0,
}
SERVER_EXERCISE = "slo-check"  # its grader runs a real uvicorn server and locust


def timed(argv: list[str], home: Path) -> tuple[float, int]:
    env = {**os.environ, "MLOPS_HOME": str(home)}
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=repo_root(), env=env, capture_output=True, text=True, check=False)
    return time.monotonic() - start, proc.returncode


def check(lab: Lab, impl: str, home: Path) -> tuple[float, int]:
    return timed([sys.executable, "-m", "mlops_lab.cli", "lab", "check", str(lab.id), "--impl", impl], home)


def solve_up_to(copy: Path, lab: Lab, exercise_id: str) -> None:
    """Put the solution (labs/solutions/) of every exercise before `exercise_id` in place."""
    for e in lab.exercises:
        if e.id == exercise_id:
            return
        (copy / e.file).write_text((repo_root() / e.solution).read_text())


def run() -> dict[str, Any]:
    labs = [lab for lab in load_manifest() if lab.exercises]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        rows.append(row("baseline", "python -c pass", *timed([sys.executable, "-c", "pass"], base / "h")))
        for words in (["--help"], ["lab", "status"]):
            argv = [sys.executable, "-m", "mlops_lab.cli", *words]
            rows.append(row("cli start-up", f"mlops-lab {' '.join(words)}", *timed(argv, base / "h")))
        for lab in labs:
            copy, home = base / f"skeleton-{lab.id}", base / f"home-{lab.id}"
            materialize(repo_root(), copy)
            rows.append(
                row("first feedback", f"lab {lab.id}, untouched skeleton", *check(lab, str(copy), home))
            )
            again = check(lab, str(copy), home)
            rows.append(row("re-grade (no server)", f"lab {lab.id}, {lab.exercises[0].id}", *again))
            rows.append(row("whole lab", f"lab {lab.id} on the reference", *check(lab, "reference", home)))
            if any(e.id == SERVER_EXERCISE for e in lab.exercises):
                solve_up_to(copy, lab, SERVER_EXERCISE)
                check(lab, str(copy), home)  # grades the solved ones once: saved as done
                rows.append(
                    row("re-grade (server)", f"lab {lab.id}, {SERVER_EXERCISE}", *check(lab, str(copy), home))
                )
    return {"rows": rows, "goals_s": GOALS_S, "cpus": os.cpu_count(), "load": os.getloadavg()}


def row(kind: str, what: str, seconds: float, returncode: int) -> dict[str, Any]:
    goal = GOALS_S.get(kind)
    return {
        "kind": kind,
        "what": what,
        "seconds": round(seconds, 2),
        "exit": returncode,
        "goal_s": goal,
        "met": None if goal is None else seconds <= goal,
    }


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# Lab feedback times (`python -m mlops_lab.bench.labs`)",
        "",
        f"{doc['cpus']} CPUs, load average {doc['load'][0]:.1f} at the end.",
        "",
        "| kind | what | seconds | goal | met |",
        "|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        goal = f"<= {r['goal_s']:g} s" if r["goal_s"] else ""
        met = "" if r["met"] is None else ("met" if r["met"] else "NOT MET")
        lines.append(f"| {r['kind']} | {r['what']} | {r['seconds']:.1f} | {goal} | {met} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    doc = run()
    write_outputs("labs", doc, markdown(doc))


if __name__ == "__main__":
    main()
