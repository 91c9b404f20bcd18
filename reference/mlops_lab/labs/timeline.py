"""A scenario's incident timeline: what was injected, the symptom, the signal, the mitigation,
and the checks, each at its time since the start; printed as it happens, saved as markdown.

    python -c "from mlops_lab.labs.timeline import Timeline; help(Timeline)"
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape

from mlops_lab.labs.manifest import Scenario

STYLE = {"inject": "bold magenta", "symptom": "yellow", "signal": "cyan", "mitigate": "blue", "info": "dim"}


@dataclass
class Event:
    t: float
    kind: str
    text: str
    ok: bool | None = None


@dataclass
class Timeline:
    console: Console
    started: float = field(default_factory=time.monotonic)
    events: list[Event] = field(default_factory=list)

    def add(self, kind: str, text: str, ok: bool | None = None) -> None:
        event = Event(time.monotonic() - self.started, kind, text, ok)
        self.events.append(event)
        self.console.print(self.line(event), highlight=False)

    @staticmethod
    def line(e: Event) -> str:
        if e.ok is None:
            label, style = e.kind, STYLE[e.kind]
        else:
            label, style = ("check ✔", "green") if e.ok else ("check ✘", "bold red")
        return f"  {e.t:6.1f}s  [{style}]{label:<9}[/] {escape(e.text)}"

    def markdown(self, scenario: Scenario, passed: bool) -> str:
        rows = [
            f"# {scenario.key}: {scenario.title}",
            "",
            f"- symptom: {scenario.symptom}",
            f"- signal: {scenario.signal}",
            f"- mitigation: {scenario.mitigation}",
            f"- result: {'PASSED' if passed else 'FAILED'}",
            "",
            "| t (s) | what | detail |",
            "|---:|---|---|",
        ]
        for e in self.events:
            what = e.kind if e.ok is None else ("check passed" if e.ok else "check FAILED")
            rows.append(f"| {e.t:.1f} | {what} | {e.text} |")
        return "\n".join(rows) + "\n"
