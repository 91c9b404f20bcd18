"""The lab notebooks run top to bottom (nbmake) and are stored clean.

Stored clean means: no outputs and no execution counts in git (a diff shows code, not plots),
a first markdown cell that says what the notebook shows and how to run it, and every notebook
belongs to a lab in labs/labs.toml (`notebook = ...`), so none is orphaned or missing.

Each notebook runs in its own `pytest --nbmake` subprocess with the kernel of this venv; the
notebooks write only under their own temporary folder (TMPDIR here, so pytest cleans it up).
nbmake runs a copy of the notebook and keeps its outputs there (--overwrite on the copy, never on
the notebook in git), so the same run also checks what the docs site shows: the executed notebook
has no error output, draws its plots, and renders to a page (scripts/notebooks.py, the mkdocs
hook) that carries every plot as an image.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# Generous: a notebook takes 20-45 s alone; a busy 2-core CI host can double that.
NOTEBOOK_TIMEOUT_S = 240


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _lab_notebooks() -> dict[str, int]:
    labs = tomllib.loads((ROOT / "labs" / "labs.toml").read_text())["lab"]
    return {lab["notebook"]: lab["id"] for lab in labs if "notebook" in lab}


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ has no .ipynb files"


def test_every_notebook_belongs_to_a_lab_and_every_lab_notebook_exists() -> None:
    on_disk = {p.relative_to(ROOT).as_posix() for p in NOTEBOOKS}
    listed = set(_lab_notebooks())
    assert on_disk - listed == set(), "notebooks no lab in labs/labs.toml refers to (notebook = ...)"
    assert listed - on_disk == set(), "labs/labs.toml names notebooks that do not exist"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} have outputs or execution counts; clear them before committing"
    )
    assert "widgets" not in nb.metadata, f"{path.name}: widget state in the metadata"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_starts_with_what_it_shows_and_how_to_run_it(path: Path) -> None:
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "first cell: a markdown title"
    assert "make notebooks" in first.source, "first cell: say how to run it (make notebooks)"


def _docs_hook() -> ModuleType:
    """scripts/notebooks.py, the mkdocs hook that renders the notebooks as docs pages."""
    spec = importlib.util.spec_from_file_location("docs_notebooks", ROOT / "scripts" / "notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(NOTEBOOK_TIMEOUT_S + 60)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_executes(path: Path, tmp_path: Path) -> None:
    # Lab 4's notebook draws the dashboard from a real Prometheus: `make setup` installs Debian's
    # package as root; a laptop without it skips (CI refuses to, like the promtool tests).
    if path.stem == "04-observability" and shutil.which("prometheus") is None and not os.environ.get("CI"):
        pytest.skip("prometheus not installed (apt-get install prometheus, brew install prometheus)")
    started = time.monotonic()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    executed = Path(shutil.copy(path, run_dir / path.name))  # nbmake writes the outputs into the copy
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel's inline backend: PNGs
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbmake",
            "--overwrite",
            f"--nbmake-timeout={NOTEBOOK_TIMEOUT_S}",
            "-p",
            "no:cacheprovider",
            "-q",
            str(executed),
        ],
        cwd=ROOT,
        env={**env, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=NOTEBOOK_TIMEOUT_S + 30,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert r.returncode == 0, (
        f"{path.name} failed after {elapsed:.0f} s:\n{r.stdout[-6000:]}\n{r.stderr[-2000:]}"
    )
    print(f"{path.name}: {elapsed:.1f} s")

    # What the docs site shows of it: every output, no error, and the plots as images on the page.
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert [o for o in outputs if o.output_type == "error"] == [], f"{path.name}: an error output"
    plots = [o for o in outputs if "image/png" in o.get("data", {})]
    assert plots, f"{path.name}: no cell drew a plot (image/png output); the docs page would show none"
    page, files = _docs_hook().render(path, executed, path.stem)
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", page)
    assert len(images) == len(plots) and set(images) == set(files), (
        f"{path.name}: {len(plots)} plots, the page shows {images}, output files {sorted(files)}"
    )
    assert all(data[:8] == b"\x89PNG\r\n\x1a\n" for data in files.values())
    assert page.startswith("# ") and "executed" in page.split("\n", 4)[2], page[:300]
