"""The shell scripts: shellcheck-clean, and `make cluster-up` without Docker or kind fails fast
with one line saying what to install; the kind scenarios agree between script and driver.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from mlops_lab.story import kind_story

from ..support.k8s import BIN, ROOT


def test_shell_scripts_pass_shellcheck() -> None:
    scripts = [*sorted(str(p) for p in (ROOT / "scripts").glob("*.sh")), str(ROOT / ".ci" / "run")]
    r = subprocess.run([str(BIN / "shellcheck"), *scripts], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def path_without(tmp_path: Path, *tools: str) -> str:
    """A PATH holding every program of ours except `tools` (links in one folder)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        d = Path(directory)
        if not d.is_dir():
            continue
        for program in d.iterdir():
            target = folder / program.name
            if program.name not in tools and not target.exists() and os.access(program, os.X_OK):
                target.symlink_to(program)
    return str(folder)


def test_cluster_up_without_docker_or_kind_fails_fast_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": path_without(tmp_path, "docker", "kind")}
    r = subprocess.run(
        [str(ROOT / "scripts" / "cluster.sh"), "up"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "docker" in lines[0] and "kind" in lines[0] and "https://" in lines[0], (
        r.stderr
    )
    made = subprocess.run(
        ["make", "-s", "cluster-up"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=60
    )
    assert made.returncode != 0 and lines[0] in made.stderr


def test_docker_setup_without_an_engine_or_a_way_to_install_one_is_one_line(tmp_path: Path) -> None:
    """`make docker` installs and starts an engine where it can (root on Debian: measured here, 16 s
    for docker.io and 0.6 s until `docker info` answers); anywhere it cannot, one line, exit 2."""
    env = {**os.environ, "PATH": path_without(tmp_path, "docker", "dockerd", "apt-get", "systemctl")}
    r = subprocess.run(
        [str(ROOT / "scripts" / "docker.sh")], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("docker: ") and "https://" in lines[0], r.stderr


def test_scenarios_are_the_same_in_the_script_and_the_driver() -> None:
    text = (ROOT / "scripts" / "cluster.sh").read_text()
    listed = re.search(r'^SCENARIOS="([^"]+)"', text, re.M)
    assert listed and set(listed.group(1).split()) == set(kind_story.SCENARIOS)
    r = subprocess.run(
        [str(ROOT / "scripts" / "cluster.sh"), "scenario", "kind/nope"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "stable-pod-deleted" in r.stderr
