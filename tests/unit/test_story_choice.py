"""The demo says whose code ran: the learner's solved exercises, the reference for the others,
and "not in the story" for a solved exercise the story never calls (never a false "yours")."""

from __future__ import annotations

from rich.console import Console

from mlops_lab.labs.impl import Choice
from mlops_lab.labs.manifest import load_manifest
from mlops_lab.story.demo import NOT_IN_STORY, show_choice
from mlops_lab.story.report import Report


def test_a_solved_exercise_the_story_never_calls_is_not_claimed_as_run() -> None:
    every = tuple(e for lab in load_manifest() for e in lab.exercises)
    story_skips = next(e for e in every if e.mirrors in NOT_IN_STORY)
    runs = next(e for e in every if e.mirrors == "mlops_lab.pipeline.validate")
    choice = Choice("exercises", frozenset({story_skips.id, runs.id}), every)
    console, report = Console(record=True, width=200), Report("demo")
    show_choice(console, report, choice)
    heading, _, markdown = report.sections[0]
    assert heading == "Whose code ran"
    rows = {line.split(" | ")[0].strip("| "): line for line in markdown.splitlines()}
    assert "yours (not in the story)" in rows[f"lab {story_skips.lab} {story_skips.id}"]
    assert "| yours |" in rows[f"lab {runs.lab} {runs.id}"]
    assert NOT_IN_STORY[story_skips.mirrors] in console.export_text()
