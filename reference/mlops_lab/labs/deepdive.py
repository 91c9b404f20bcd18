"""The project deep dive: what you built, broke and measured in the labs, as interview notes.

    mlops-lab lab deep-dive                  # prints the page, writes <home>/deep-dive.md (var/)
    mlops-lab lab deep-dive --out notes.md

An interview's project deep dive asks for one system in depth: what it does, what you decided,
what broke, what you measured. This page is built from your own traces, and from nothing else:

  <home>/labs/progress.json          the exercises you passed (`make lab-N`), and how many checks;
                                     the checks' names come from each exercise's grader
  <home>/scenarios/labN-<id>/timeline.md
                                     every failure scenario you ran (`make scenario S=...`):
                                     symptom, signal, mitigation, and when each happened
  <home>/bench/*.json                what `make bench` measured on your machine

and writes: a warning to say it is lab work, and how to talk about that honestly; a two-minute
walkthrough of the system (a template: the five parts and the loop, your numbers filled in,
your words to add); the exercises solved per lab with their checks; the incidents you ran, with
their measured times; the numbers you measured; and the questions an interviewer asks about
each. With no progress at all it still writes the page, and says what to run first. Reading
the traces back is traces.py; this module writes the page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops_lab.labs.manifest import Lab
from mlops_lab.labs.progress import load_progress
from mlops_lab.labs.traces import Incident, Number, Solved, incidents, numbers, solved

HONESTY = """\
!!! warning "Lab work on a laptop, not production experience"
    Everything on this page happened in a lab: exercises graded by tests, faults injected on
    purpose, generated data, simulated traffic, one machine, nobody paged. That is worth talking
    about, and it is not production experience. How to say it honestly:

    - Say "in a lab project I built to learn this" or "on my laptop", never "in production" or
      "at work", and never let an interviewer's "so when you ran this..." stand uncorrected.
    - Claim what you wrote: the exercises below are yours; the rest of the system was given
      (the reference). "I wrote the canary judge; the router came with the lab" is a strong answer.
    - Quote numbers with their conditions: the machine, loopback, simulated traffic.
    - To "have you done this in production?", answer "No. Here is what I built to learn it, what I
      measured, and what I expect to differ at scale": real traffic, networks, labels that take
      weeks, other teams. Then connect it to what you did run in production, if you have."""

# The five parts of the system and the lab that rebuilds each, in the loop's order.
PARTS: dict[int, tuple[str, str]] = {
    1: (
        "Serving",
        "a model server (FastAPI on uvicorn) that validates at the edge (a 422, never a 500), is "
        "ready only with a model loaded, swaps models atomically and logs every prediction",
    ),
    2: (
        "Lifecycle",
        "tracked training runs in MLflow, a registry with aliases, an evaluation gate against "
        "the champion, promotion and rollback by alias with an audit log",
    ),
    3: (
        "Orchestration",
        "retraining as an Airflow pipeline whose steps can be retried, resumed and re-run, with a "
        "validation gate that refuses a broken upstream, and one retrain at a time",
    ),
    4: (
        "Observability",
        "a drift monitor that only triggers on drift that matters to the model and persists, "
        "realized performance from delayed labels, alert rules tested with promtool",
    ),
    5: (
        "Canary",
        "a router (sticky weighted split, shadow copies), a judge that compares the canary with "
        "the behaviour recorded at evaluation, and a crash-safe controller that promotes or rolls back",
    ),
}
LOOP = (
    "every prediction is logged; the monitor compares each window with the training reference; "
    "drift that matters triggers the retraining pipeline; its model must pass the gate and is "
    "staged as @challenger; the canary shadows it, steps it to 5, 25, 50% and promotes it or "
    "rolls it back by itself; and the monitor watches the new champion"
)
# What an interviewer asks about each lab's part, keyed by the lab's slug in labs.toml.
LAB_QUESTIONS: dict[str, tuple[str, ...]] = {
    "serving": (
        "Why does /healthz not depend on the model while /readyz does? What does each one drive?",
        "A promoted model file is corrupt: what does your server do, and how would you know?",
        "What happens to in-flight requests and unwritten log rows on SIGTERM during a deploy?",
        "How did you measure p99: open or closed loop, and why does that matter?",
    ),
    "lifecycle": (
        "Which data, code and parameters produced the model serving right now? Show me how you know.",
        "What does your gate compare, and what bad model would still get through it?",
        "How do you roll back, how long does it take, and who is allowed to?",
    ),
    "orchestration": (
        "The retraining job crashes after it registered a model, and is retried: what happens?",
        "How does a broken upstream (a unit change, a blank column) not get learned?",
        "Two triggers fire at once, or a promotion happens mid-run: what stops a mess?",
    ),
    "observability": (
        "Drift alarms on clean traffic: how do you keep the pager quiet without going blind?",
        "Labels arrive days later: how do you know the model got worse before they do?",
        "Which of your alerts page a human, and which only go on a dashboard? Why?",
    ),
    "system-design": (
        "A good retrain is supposed to score differently: how does the canary tell good from bad?",
        "Why not test at 5% at every look? What happens to false rollbacks?",
        "The controller crashes between two actions: what state is the system in?",
        "Why shadow before any user sees the canary, and when is shadow not enough?",
    ),
    "coding": (
        "What is the complexity of each operation, and is it safe with concurrent callers?",
        "Where does this run in the system, and what happens at its bounds (memory, clients)?",
    ),
}
# What each measured figure invites (keys of traces.numbers).
NUMBER_QUESTIONS = {
    "latency": "What is in those milliseconds, and what would a network hop and TLS add?",
    "throughput": "What limits it: the model, the framework, the GIL, the log? How did you find out?",
    "p99-at-load": "Why does p99 grow long before saturation, and what utilisation do you plan for?",
    "router": "Is that affordable inside the SLO? What would a production router be?",
    "false-rollbacks": "Zero rollbacks is not a zero rate: what does the upper bound say? Why spend alpha?",
    "naive-looks": "Why do repeated looks inflate false alarms, and what fixes it?",
    "drift-triggers": "What keeps it at zero, and what real drift would it still catch, how fast?",
    "naive-drift": "Why does a per-column test fire on one of many columns? How many pages a day is that?",
    "single-row": "When would a GPU pay for itself here? (docs/concepts/capacity-and-cost.md)",
}
# The figure the walkthrough quotes for a part, and how it says it.
PART_NUMBERS = {
    1: ("latency", "predict p50 / p99 {} at concurrency 1"),
    4: ("drift-triggers", "{} retraining triggers on clean windows"),
    5: ("false-rollbacks", "false rollbacks in A/A: {}"),
}


# ---------------------------------------------------------------- the page
def _seconds(x: float | None) -> str:
    return "not seen" if x is None else f"{x:.1f} s"


def walkthrough(
    labs: list[Lab], done: dict[int, list[Solved]], nums: list[Number], seen: list[Incident]
) -> list[str]:
    by_key = {n.key: n.value for n in nums}
    lines = [
        "## A two-minute walkthrough",
        "",
        "A template: the structure and the numbers are filled in, the words in [brackets] are yours to",
        "write. Say it aloud, time it, cut what does not fit.",
        "",
        "**What and why (20 s).** In a lab project on my laptop I built an end-to-end fraud-detection",
        "system, to learn [what you wanted to learn, from where you come from]. It has five parts and",
        "one loop.",
        "",
        "**The five parts (60 s).**",
        "",
    ]
    titles = {lab.id: lab for lab in labs}
    for lab_id, (name, does) in PARTS.items():
        mine = [s.exercise.id for s in done.get(lab_id, []) if s.state == "passed"]
        wrote = f"I wrote {', '.join(mine)}" if mine else f"Not built yet (make lab-{lab_id})"
        key, phrase = PART_NUMBERS.get(lab_id, ("", ""))
        fact = f"; measured: {phrase.format(by_key[key])}" if key in by_key else ""
        lab = titles.get(lab_id)
        label = f"lab {lab_id}" + ("" if lab is None or lab.status == "ready" else f", {lab.status}")
        lines.append(f"{lab_id}. **{name}** ({label}): {does}. {wrote}{fact}. [Why it matters, one line.]")
    yours = [i for i in seen if i.passed and i.whose_code and "none solved" not in i.whose_code]
    story = next(iter(yours), next((i for i in seen if i.passed), None))
    incident = (
        f"`{story.scenario.key}`: {story.scenario.symptom} The signal came "
        f"{_seconds(story.after_injection('signal'))} after the injection: {story.scenario.signal}"
        + (
            " (That run played the reference code: say so, or run it again with IMPL=exercises.)"
            if story.whose_code and "none solved" in story.whose_code
            else ""
        )
        if story
        else "[none run yet: `make scenario S=lab1/corrupt-model IMPL=exercises`, then come back]"
    )
    lines += [
        "",
        f"**The loop (20 s).** {LOOP[0].upper()}{LOOP[1:]}.",
        "",
        f"**One incident (20 s).** {incident} [What you did, what you changed afterwards.]",
        "",
        "**One trade-off and what you would do differently in production (20 s).** [For example:",
        "the complete prediction log costs batch scoring 9x its goal (docs/architecture.md); or",
        "what you would not build yourself: Argo Rollouts, a feature store, a managed registry.]",
    ]
    return lines


def render(labs: list[Lab], progress: dict[str, Any], home: Path, root: Path, now: datetime) -> str:
    done = {lab.id: solved(lab, progress, root) for lab in labs if lab.exercises}
    seen = incidents(labs, home)
    nums = numbers(home)
    passed = sum(s.state == "passed" for ss in done.values() for s in ss)
    total = sum(len(ss) for ss in done.values())
    out = [
        "# Project deep dive: your notes",
        "",
        f"Written by `mlops-lab lab deep-dive` on {now:%Y-%m-%d %H:%M} UTC from {home}: "
        f"{passed} of {total} exercises passed, {len(seen)} scenario timelines, "
        f"{len(nums)} measured figures. Run it again after each lab.",
        "",
        HONESTY,
        "",
    ]
    if not seen and all(x.state == "todo" for ss in done.values() for x in ss):
        out += [
            "## Start here",
            "",
            "Nothing graded and no scenario run yet under this home, so there is nothing of yours to",
            "talk about yet. Run, in this order:",
            "",
            "1. `make lab-1`: grades your exercises/lab1 (the first time, it sets up .venv).",
            "2. `make scenario S=lab1/corrupt-model IMPL=exercises`: breaks the server you wrote.",
            "3. `make bench`: your machine's numbers (about 17 minutes).",
            "4. `mlops-lab lab deep-dive` again.",
            "",
        ]
    out += [*walkthrough(labs, done, nums, seen), ""]
    out += ["## What you built, lab by lab", ""]
    for lab in labs:
        if lab.id not in done:
            continue
        mine = done[lab.id]
        count = sum(s.state == "passed" for s in mine)
        out += [f"### Lab {lab.id}: {lab.title}", ""]
        if all(s.state == "todo" for s in mine):
            ids = ", ".join(s.exercise.id for s in mine)
            out += [f"Not started: `make lab-{lab.id}` grades exercises/lab{lab.id}/ ({ids}).", ""]
            continue
        out += [f"{count} of {len(mine)} exercises passed.", ""]
        out += [line for s in mine for line in _exercise_lines(lab, s)]
        questions = LAB_QUESTIONS.get(lab.slug, ())
        if count and questions:
            out += ["", "Questions an interviewer will ask:", "", *[f"- {q}" for q in questions]]
        out.append("")
    out += ["## Incidents you ran", ""]
    if not seen:
        out += ["None yet. `make scenario S=list` lists them; each one writes its timeline.", ""]
    for i in seen:
        out += _incident_lines(i)
    out += ["## Numbers you measured", ""]
    if nums:
        out += ["| what | measured | file | the question it invites |", "|---|---|---|---|"]
        out += [f"| {n.what} | {n.value} | {n.source} | {NUMBER_QUESTIONS[n.key]} |" for n in nums]
        out += ["", "Quote them with the machine they were measured on (the files say which)."]
    else:
        out += [
            f"Nothing under {home / 'bench'} yet: `make bench` writes it (about 17 minutes). Until then,",
            "the figures in docs/architecture.md are the project's, not yours: say so if you quote one.",
        ]
    return "\n".join(out).rstrip() + "\n"


def _exercise_lines(lab: Lab, s: Solved) -> list[str]:
    e = s.exercise
    head = f"- **{e.id}** (`{e.file}`)"
    if s.state == "passed":
        checks = [f"    - {name}" for name in s.checks]
        return [f"{head}: passed, {s.total_checks} checks. *{e.teaches}*", *checks]
    if s.state == "changed":
        return [f"{head}: passed, but the file or its grader changed since: `make lab-{lab.id}` again."]
    if s.state == "started":
        return [
            f"{head}: {s.passed_checks} of {s.total_checks} checks at the last grading; `make hint-{lab.id}`."
        ]
    return [f"- {e.id} (`{e.file}`): not solved yet."]


def _incident_lines(i: Incident) -> list[str]:
    s = i.scenario
    passed, total = i.checks
    symptom, signal, fix = i.first("symptom"), i.first("signal"), i.first("mitigate")
    knew = i.after_injection("signal")
    whose = ""
    if i.whose_code:
        whose = f"; the servers ran your code for: {i.whose_code}"
        if "none solved" in i.whose_code:  # the scenario broke the given system, not the learner's
            whose = "; it ran the reference code, not yours: say so, or run it again with IMPL=exercises"
    lines = [
        f"### {s.key}: {s.title}",
        "",
        f"Ran {i.ran_at:%Y-%m-%d %H:%M} UTC, {'PASSED' if i.passed else 'FAILED'} in {i.duration_s:.1f} s, "
        f"{passed} of {total} checks held{whose} (`{i.path}`).",
        "",
        f"- **Symptom**: {s.symptom}" + (f" Seen: {symptom.detail}" if symptom else ""),
        f"- **Signal**: {s.signal}" + (f" Seen: {signal.detail}" if signal else ""),
        f"- **Mitigation**: {s.mitigation}" + (f" Done: {fix.detail}" if fix else ""),
        f"- **Timing**, from the injection on this run's clock (a simulated scenario gives its own "
        f"simulated times above): symptom {_seconds(i.after_injection('symptom'))}, signal "
        f"{_seconds(knew)}, mitigation {_seconds(i.after_injection('mitigate'))}.",
        "",
        "Tell it as an incident: what you saw, how you knew, what you did, and what you changed so",
        "that it cannot happen the same way again. Questions to expect:",
        "",
        f"- The signal came {_seconds(knew)} after the fault here: what would page a human in "
        "production, and after how long?",
        f'- Why is this the mitigation ("{s.mitigation.split(";")[0].split(":")[0].rstrip(".")}"), '
        "and what does it cost?",
        "- What would be different in production: scale, the people involved, what you can and cannot see?",
        "",
    ]
    if not i.passed:
        lines[-1:] = ["", f"It failed: compare with `make scenario S={s.key}` (the reference).", ""]
    return lines


def deep_dive(labs: list[Lab], home: Path, root: Path, now: datetime | None = None) -> str:
    """The page for the progress, timelines and bench results under `home`."""
    return render(labs, load_progress(home), home, root, now or datetime.now(UTC))
