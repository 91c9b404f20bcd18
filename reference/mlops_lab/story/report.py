"""Self-contained HTML + Markdown + JSON reports (plots embedded as PNG data URIs).

    python -c "from mlops_lab.story.report import Report; help(Report)"

No template engine and no external assets: a report is one folder that opens anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: reports are written by servers and CI
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#1b1f24}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #d0d7de;padding:.3em .6em;text-align:left}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}img{max-width:100%}
code{background:#f6f8fa;padding:.1em .3em}
"""


@dataclass
class Report:
    title: str
    sections: list[tuple[str, str, str]] = field(default_factory=list)  # (heading, html, markdown)
    data: dict[str, Any] = field(default_factory=dict)

    def table(
        self,
        heading: str,
        rows: Sequence[Sequence[Any]],
        header: list[str] | None = None,
        first: bool = False,
    ) -> None:
        head_html = "".join(f"<th>{html.escape(h)}</th>" for h in header) if header else ""
        body_html = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
        md_rows = ([header] if header else [["", ""]]) + [[str(c) for c in r] for r in rows]
        md = "\n".join("| " + " | ".join(r) + " |" for r in md_rows[:1])
        md += (
            "\n|"
            + "---|" * len(md_rows[0])
            + "\n"
            + "\n".join("| " + " | ".join(r) + " |" for r in md_rows[1:])
        )
        section = (heading, f"<table><tr>{head_html}</tr>{body_html}</table>", md)
        self.sections.insert(0 if first else len(self.sections), section)

    def text(self, heading: str, body: str, first: bool = False) -> None:
        self.sections.insert(
            0 if first else len(self.sections), (heading, f"<p>{html.escape(body)}</p>", body)
        )

    def figure(self, heading: str, fig: Figure, caption: str = "") -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
        cap = f"<p>{html.escape(caption)}</p>" if caption else ""
        self.sections.append(
            (heading, f'<img alt="{html.escape(heading)}" src="{uri}">{cap}', f"*(plot: {heading})*")
        )

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        body = "".join(f"<h2>{html.escape(h)}</h2>{b}" for h, b, _ in self.sections)
        page = (
            f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(self.title)}</title>"
            f"<style>{_CSS}</style><h1>{html.escape(self.title)}</h1>{body}</html>"
        )
        (folder / "index.html").write_text(page)
        (folder / "report.md").write_text(
            f"# {self.title}\n\n" + "\n\n".join(f"## {h}\n\n{m}" for h, _, m in self.sections)
        )
        (folder / "report.json").write_text(json.dumps(self.data, indent=1, default=str))
        return folder / "index.html"


def _cell(value: Any) -> str:
    if value is True:
        return '<span class="ok">yes</span>'
    if value is False:
        return '<span class="bad">no</span>'
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def new_figure(width: float = 8, height: float = 3.2) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=(width, height))
    ax.grid(alpha=0.3)
    return fig, ax
