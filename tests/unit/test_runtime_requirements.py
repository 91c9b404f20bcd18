"""The image's dependency set (requirements/runtime.txt) is the lock's, cut to what runs.

Every pin in runtime.txt is the lock's exact version (make lock compiles one from the other), every
direct runtime dependency is in it, and no dev or test tool, nor Airflow, rides along.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;]+)", re.MULTILINE)


def pins(path: Path) -> dict[str, str]:
    return {name.lower().replace("_", "-"): v for name, v in PIN.findall(path.read_text())}


def test_runtime_pins_are_the_locks() -> None:
    lock, runtime = pins(ROOT / "requirements/lock.txt"), pins(ROOT / "requirements/runtime.txt")
    differ = {n: (v, lock.get(n)) for n, v in runtime.items() if lock.get(n) != v}
    assert not differ, f"expected runtime.txt pinned as the lock (make lock), got {differ}"
    direct = [
        re.split(r"[\[<>=~ ]", line.strip(), maxsplit=1)[0].lower()
        for line in (ROOT / "requirements/runtime.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    missing = [n for n in direct if n not in runtime]
    assert not missing, f"expected every runtime.in package in runtime.txt, missing {missing}"
    dev = {"pytest", "jupyterlab", "apache-airflow", "locust", "schemathesis", "nbmake", "kubernetes"}
    assert not dev & set(runtime), f"expected no dev tools in the image, got {sorted(dev & set(runtime))}"
