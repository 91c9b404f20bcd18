"""The lab manifest: labs/labs.toml read into typed records.

    python -m mlops_lab.labs.manifest       # prints the labs, their exercises and scenarios

labs.toml is the one ordered list of labs; the runner, the Make targets, the docs nav and the
self-check (`mlops-lab lab verify`) all read it through `load_manifest`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import mlops_lab
from mlops_lab.errors import UserError


class LabError(UserError):
    """A lab command that cannot proceed; the message is one line for the user."""


@dataclass(frozen=True)
class Exercise:
    lab: int
    id: str
    file: str  # path from the repo root, under exercises/
    mirrors: str  # the reference module with the same public names
    grader: str  # the pytest file that grades it
    teaches: str
    hints: tuple[str, ...]

    @property
    def solution(self) -> str:
        """A solution as a learner would write it, with why: labs/solutions/labN/<file name>."""
        return (Path("labs/solutions") / Path(self.file).relative_to("exercises")).as_posix()


@dataclass(frozen=True)
class Scenario:
    lab: int
    id: str
    title: str
    symptom: str
    signal: str
    mitigation: str
    needs: tuple[str, ...] = ()  # exercise ids whose code the scenario runs (learner's if solved)

    @property
    def key(self) -> str:
        """The name `make scenario S=...` takes: lab1/corrupt-model."""
        return f"lab{self.lab}/{self.id}"

    @property
    def module_file(self) -> str:
        return f"labs/scenarios/lab{self.lab}/{self.id.replace('-', '_')}.py"


@dataclass(frozen=True)
class Lab:
    id: int
    slug: str
    title: str
    status: str  # "ready" or "coming"
    page: str | None
    notebook: str | None
    exercises: tuple[Exercise, ...]
    scenarios: tuple[Scenario, ...]

    @property
    def short_title(self) -> str:
        return self.title.split(":")[0]


def repo_root() -> Path:
    """The checkout that holds labs/labs.toml: the editable install's, else the current directory's."""
    candidates = [Path(mlops_lab.__file__).resolve().parents[2], *Path.cwd().resolve().parents, Path.cwd()]
    for root in candidates:
        if (root / "labs" / "labs.toml").is_file():
            return root
    raise LabError("labs/labs.toml not found: run this from the mlops-lab checkout")


def load_manifest(root: Path | None = None) -> list[Lab]:
    root = root or repo_root()
    raw = tomllib.loads((root / "labs" / "labs.toml").read_text())
    labs = []
    for entry in raw["lab"]:
        lab_id = int(entry["id"])
        exercises = tuple(
            Exercise(
                lab=lab_id,
                id=e["id"],
                file=e["file"],
                mirrors=e["mirrors"],
                grader=e["grader"],
                teaches=e["teaches"],
                hints=tuple(e.get("hints", ())),
            )
            for e in entry.get("exercise", ())
        )
        scenarios = tuple(
            Scenario(
                lab_id,
                s["id"],
                s["title"],
                s["symptom"],
                s["signal"],
                s["mitigation"],
                tuple(s.get("needs", ())),
            )
            for s in entry.get("scenario", ())
        )
        labs.append(
            Lab(
                id=lab_id,
                slug=entry["slug"],
                title=entry["title"],
                status=entry.get("status", "ready"),
                page=entry.get("page"),
                notebook=entry.get("notebook"),
                exercises=exercises,
                scenarios=scenarios,
            )
        )
    return labs


def get_lab(labs: list[Lab], lab_id: int | str) -> Lab:
    for lab in labs:
        if str(lab.id) == str(lab_id).removeprefix("lab"):
            if lab.status != "ready":
                raise LabError(
                    f"lab {lab.id} ({lab.short_title}) is not written yet: see the docs for what exists"
                )
            return lab
    known = ", ".join(str(lab.id) for lab in labs)
    raise LabError(f"no lab {lab_id}; labs are {known}")


def get_scenario(labs: list[Lab], key: str) -> Scenario:
    for lab in labs:
        for scenario in lab.scenarios:
            if scenario.key == key:
                return scenario
    known = " ".join(s.key for lab in labs for s in lab.scenarios)
    raise LabError(f"no scenario {key!r}; known: {known}")


def exercise_for_grader(labs: list[Lab], grader: str) -> Exercise:
    for lab in labs:
        for exercise in lab.exercises:
            if exercise.grader == grader:
                return exercise
    raise LabError(f"{grader} is not the grader of any exercise in labs/labs.toml")


if __name__ == "__main__":
    for lab in load_manifest():
        print(f"Lab {lab.id}: {lab.title} [{lab.status}]")
        for e in lab.exercises:
            print(f"  exercise {e.id:<18} {e.file}  (mirrors {e.mirrors})")
        for s in lab.scenarios:
            print(f"  scenario {s.key}")
