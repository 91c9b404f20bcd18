"""The docs that are generated from labs/labs.toml: the scenario catalogue and the README lab table.

    python -m mlops_lab.labs.docs            # rewrite docs/scenarios.md and the README table
    python -m mlops_lab.labs.docs --check    # exit 1 when either is out of date (make test does this)

The README table sits between the markers `<!-- labs:start -->` and `<!-- labs:end -->`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mlops_lab.labs.manifest import Lab, load_manifest, repo_root

START, END = "<!-- labs:start -->", "<!-- labs:end -->"


def scenarios_page(labs: list[Lab]) -> str:
    out = [
        "# Scenarios catalogue",
        "",
        "<!-- generated from labs/labs.toml by `python -m mlops_lab.labs.docs`; edit the manifest -->",
        "",
        "Every scenario starts the real system (an MLflow server, model server processes) under",
        "`var/scenarios/`, injects a real fault, checks the reliable behaviour and prints an incident",
        "timeline: what was injected, the symptom, the signal that shows it, the mitigation. Each one",
        "doubles as an interview answer: *what happens when ...?*",
        "",
        "```bash",
        "make scenario S=lab1/corrupt-model                 # the reference implementation",
        "make scenario S=lab1/corrupt-model IMPL=exercises  # your lab code in the same situation",
        "make scenario                                      # the list",
        "```",
        "",
        "A timeline is also written to `var/scenarios/<lab>-<id>/timeline.md`.",
    ]
    for lab in labs:
        if not lab.scenarios:
            continue
        out += ["", f"## Lab {lab.id}: {lab.short_title}", ""]
        for s in lab.scenarios:
            out += [
                f"### {s.key}",
                "",
                f"**{s.title}.** `make scenario S={s.key}`",
                "",
                f"- **Symptom:** {s.symptom}",
                f"- **Signal:** {s.signal}",
                f"- **Mitigation:** {s.mitigation}",
                f"- **Source:** `{s.module_file}`",
                "",
            ]
    return "\n".join(out).rstrip() + "\n"


def readme_table(labs: list[Lab]) -> str:
    rows = [
        START,
        "| lab | title | exercises | scenarios | grade it |",
        "|---|---|---|---|---|",
    ]
    for lab in labs:
        if lab.status != "ready":
            rows.append(f"| {lab.id} | {lab.title} | coming | coming | |")
            continue
        exercises = ", ".join(f"`{e.id}`" for e in lab.exercises)
        scenarios = ", ".join(f"`{s.key}`" for s in lab.scenarios)
        rows.append(f"| {lab.id} | {lab.title} | {exercises} | {scenarios} | `make lab-{lab.id}` |")
    return "\n".join([*rows, END])


def render(root: Path) -> dict[Path, str]:
    labs = load_manifest(root)
    readme = (root / "README.md").read_text()
    if START in readme and END in readme:
        head, rest = readme.split(START, 1)
        readme = head + readme_table(labs) + rest.split(END, 1)[1]
    return {root / "docs" / "scenarios.md": scenarios_page(labs), root / "README.md": readme}


def main(argv: list[str]) -> int:
    root = repo_root()
    stale = [path for path, text in render(root).items() if not path.exists() or path.read_text() != text]
    if "--check" in argv:
        for path in stale:
            print(f"{path.relative_to(root)} is out of date: python -m mlops_lab.labs.docs")
        return 1 if stale else 0
    for path, text in render(root).items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
