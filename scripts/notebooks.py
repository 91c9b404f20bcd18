"""The lab notebooks on the docs site, with their outputs: execute them, then render them as pages.

    .venv/bin/python scripts/notebooks.py           # execute the stale ones into var/notebooks/
    .venv/bin/python scripts/notebooks.py --force   # execute every one

The notebooks in git (notebooks/*.ipynb, one per lab in labs/labs.toml) stay stripped of
outputs (tests/e2e/test_notebooks.py checks it). `make docs` and `make docs-serve` run this
script first: it executes each notebook whose executed copy is missing or older than the
notebook, the reference code or the lock, into var/notebooks/<name>.ipynb (gitignored, like
all of var/). The copy is written only when every cell ran.

mkdocs.yml loads this file as a hook: `on_files` renders each lab's notebook to the page
notebooks/<name>.md (code cells, their outputs under an "output" title, plots as PNG files
beside the page). It renders the executed copy when there is one newer than the notebook, and
otherwise the stripped notebook under a note that says how to get the outputs, so a plain
`mkdocs build` (the docs tests) works without executing anything.
"""

from __future__ import annotations

import base64
import os
import re
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXECUTED = ROOT / "var" / "notebooks"
PAGES = "notebooks"  # the site folder of the rendered pages: notebooks/<name>.md
TIMEOUT_S = 600  # per cell; a notebook takes 20-60 s on a 2-core VM


def lab_notebooks(root: Path = ROOT) -> dict[Path, dict[str, Any]]:
    """Each lab's notebook (labs/labs.toml `notebook = ...`) and its lab."""
    labs = tomllib.loads((root / "labs" / "labs.toml").read_text())["lab"]
    return {root / lab["notebook"]: lab for lab in labs if lab.get("notebook")}


def executed_copy(notebook: Path, executed_dir: Path = EXECUTED) -> Path:
    return executed_dir / notebook.name


def _inputs_mtime(notebook: Path, root: Path = ROOT) -> float:
    """The newest of what an executed copy depends on: the notebook, the reference code, the lock."""
    sources = [notebook, root / "requirements" / "lock.txt", *(root / "reference").rglob("*.py")]
    return max(p.stat().st_mtime for p in sources if p.exists())


def stale(notebook: Path, executed_dir: Path = EXECUTED) -> bool:
    copy = executed_copy(notebook, executed_dir)
    return not copy.exists() or copy.stat().st_mtime < _inputs_mtime(notebook)


def execute(notebook: Path, out: Path) -> float:
    """Run every cell of `notebook` with this venv's kernel; write the executed copy to `out`.

    The kernel runs in the notebook's folder (as nbmake and JupyterLab run it), with a private
    TMPDIR that is removed afterwards and matplotlib's inline backend, so plots become PNGs.
    """
    import nbformat
    from nbclient import NotebookClient  # what nbmake runs notebooks with

    started = time.monotonic()
    nb = nbformat.read(notebook, as_version=4)
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix=f"nb-{notebook.stem}-") as tmp:
        os.environ.pop("MPLBACKEND", None)  # Agg (set by some test envs) would draw no plot into the outputs
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ["TMPDIR"] = tmp  # the kernel inherits the environment when it starts
        try:
            NotebookClient(
                nb,
                timeout=TIMEOUT_S,
                kernel_name="python3",
                resources={"metadata": {"path": str(notebook.parent)}},
                # the kernel's own log (a warning about plain TCP on 127.0.0.1); cell errors still raise
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
            ).execute()
        finally:
            os.environ.clear()
            os.environ.update(saved)
    seconds = time.monotonic() - started
    nb.metadata["mlops_lab"] = {
        "executed_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(seconds, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    nbformat.write(nb, partial)
    partial.replace(out)
    return seconds


class NotebookFailed(Exception):
    """A cell raised (or timed out); the message names the notebook and carries the traceback."""


def _execute_one(notebook: Path, out: Path) -> str:
    try:
        seconds = execute(notebook, out)
    except Exception as exc:  # nbclient's errors do not all survive the trip back from the worker
        name, message = notebook.relative_to(ROOT), _ANSI.sub("", str(exc))
        raise NotebookFailed(f"{name} failed; no executed copy written:\n{message}") from None
    return f"{notebook.relative_to(ROOT)}: executed in {seconds:.0f} s -> {out.relative_to(ROOT)}"


def execute_stale(force: bool = False, executed_dir: Path = EXECUTED) -> list[str]:
    todo = [nb for nb in lab_notebooks() if force or stale(nb, executed_dir)]
    if not todo:
        return []
    # One process per notebook (each starts its own kernel); two at a time: they mostly wait on MLflow.
    with ProcessPoolExecutor(max_workers=min(2, len(todo))) as pool:
        runs = [pool.submit(_execute_one, nb, executed_copy(nb, executed_dir)) for nb in todo]
        return [run.result() for run in runs]


# ------------------------------------------------------------------ rendering to a docs page

_DATAFRAME_STYLE = re.compile(r"<style scoped>.*?</style>\s*", re.S)
_DATAFRAME_TABLE = re.compile(r'<table border="1" class="dataframe">')
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _fenced(text: str, lang: str, title: str | None = None) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    attrs = f' title="{title}"' if title else ""
    return f"{fence}{lang}{attrs}\n{text.rstrip()}\n{fence}"


def _outputs(cell: Any, cell_index: int, page_name: str, files: dict[str, bytes]) -> list[str]:
    """One Markdown block per output: text under an "output" (or "stderr") title, plots as PNG
    files beside the page, pandas tables as HTML styled by the theme."""
    blocks: list[str] = []
    stream: tuple[str, str] | None = None  # consecutive writes to one stream read as one block
    for n, output in enumerate(cell.get("outputs", [])):
        kind = output.output_type
        if kind == "stream":
            text = _ANSI.sub("", output.text)
            if stream and stream[0] == output.name:
                stream = (output.name, stream[1] + text)
                blocks[-1] = _fenced(stream[1], "text", "output" if output.name == "stdout" else "stderr")
                continue
            stream = (output.name, text)
            blocks.append(_fenced(text, "text", "output" if output.name == "stdout" else "stderr"))
            continue
        stream = None
        if kind == "error":
            blocks.append(_fenced(_ANSI.sub("", "\n".join(output.traceback)), "text", "error"))
            continue
        data = output.get("data", {})
        if "image/png" in data:
            name = f"{page_name}_files/{page_name}_{cell_index}_{n}.png"
            files[name] = base64.b64decode(data["image/png"])
            blocks.append(f"![a plot drawn by the cell above]({name})")
        elif "text/html" in data:
            html = _DATAFRAME_TABLE.sub("<table>", _DATAFRAME_STYLE.sub("", data["text/html"]))
            blocks.append(f'<div class="nb-output" markdown="0">\n{html.strip()}\n</div>')
        elif "text/markdown" in data:
            blocks.append(data["text/markdown"])
        elif "text/plain" in data:
            blocks.append(_fenced(_ANSI.sub("", data["text/plain"]), "text", "output"))
    return blocks


def render(notebook: Path, executed: Path | None, page_name: str) -> tuple[str, dict[str, bytes]]:
    """The Markdown page of one notebook and its output files (paths relative to the page's folder).

    `executed` is the executed copy to render, or None for the stripped notebook.
    """
    import nbformat

    nb = nbformat.read(executed or notebook, as_version=4)
    files: dict[str, bytes] = {}
    blocks: list[str] = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            blocks.append(cell.source)
        elif cell.cell_type == "code" and cell.source.strip():
            blocks.append(_fenced(cell.source, "python"))
            blocks += _outputs(cell, i, page_name, files)
    source = notebook.relative_to(ROOT).as_posix() if notebook.is_relative_to(ROOT) else notebook.name
    if executed is not None:
        meta = nb.metadata.get("mlops_lab", {})
        note = (
            f'!!! info "The notebook `{source}`, executed"\n'
            f"    The outputs below come from a run made when this site was built"
            f" ({meta.get('executed_at', 'date unknown')}, {meta.get('seconds', '?')} s)."
            f" Run it yourself with `make notebooks` (JupyterLab); the copy in git has no outputs."
        )
    else:
        note = (
            f'!!! warning "The notebook `{source}`, without its outputs"\n'
            f"    This site was built without executing the notebooks, so there are no outputs or plots"
            f" below. `make docs` executes them first; `make notebooks` opens it in JupyterLab."
        )
    body = "\n\n".join(blocks)
    title, _, rest = body.partition("\n")
    if not title.startswith("# "):
        title, rest = f"# {notebook.stem}", body
    return f"{title}\n\n{note}\n\n{rest.strip()}\n", files


# ------------------------------------------------------------------ the mkdocs hook


def on_files(files: Any, config: Any) -> Any:
    """Add notebooks/<name>.md (and its plots) to the site for every lab notebook."""
    from mkdocs.structure.files import File

    for notebook in lab_notebooks():
        copy = executed_copy(notebook)
        fresh = copy.exists() and copy.stat().st_mtime >= notebook.stat().st_mtime
        page, outputs = render(notebook, copy if fresh else None, notebook.stem)
        files.append(File.generated(config, f"{PAGES}/{notebook.stem}.md", content=page))
        for name, data in outputs.items():
            files.append(File.generated(config, f"{PAGES}/{name}", content=data))
    return files


def main(argv: list[str]) -> int:
    try:
        lines = execute_stale(force="--force" in argv)
    except NotebookFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
