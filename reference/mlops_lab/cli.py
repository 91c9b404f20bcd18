"""The `mlops-lab` command line.

    mlops-lab --help
    mlops-lab data generate --scenario baseline --rows 50000 --out var/data/train.parquet
    mlops-lab train --data var/data/train.parquet --promote
    mlops-lab up && mlops-lab status && mlops-lab down
    mlops-lab retrain --reason "drift on amount"
    mlops-lab demo

Errors a user can cause (bad file, unknown version, port in use, registry down) print one
line on stderr and exit with code 2 (usage) or 1 (the operation failed); never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import httpx
import typer
from rich.console import Console
from rich.table import Table

from mlops_lab.labs.cli import lab_app
from mlops_lab.labs.manifest import LabError
from mlops_lab.settings import Settings, Variant, get_settings

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="mlops-lab: serve, track, canary, retrain."
)
data_app = typer.Typer(no_args_is_help=True, help="Synthetic transactions and delayed labels.")
registry_app = typer.Typer(no_args_is_help=True, help="Model versions and aliases (champion/challenger).")
store_app = typer.Typer(no_args_is_help=True, help="The prediction store.")
canary_app = typer.Typer(
    no_args_is_help=True, help="Canary rollouts of @challenger (router + judge + controller)."
)
app.add_typer(data_app, name="data")
app.add_typer(registry_app, name="registry")
app.add_typer(store_app, name="store")
app.add_typer(canary_app, name="canary")
app.add_typer(lab_app, name="lab")

console = Console()
err = Console(stderr=True, soft_wrap=True)  # one line per error, however narrow the terminal


class UserError(Exception):
    """An error the user can fix; printed as one line, exit code 1."""


def _settings() -> Settings:
    from mlops_lab.lifecycle.tracking import configure_mlflow_env

    configure_mlflow_env()
    return get_settings()


# ---------------------------------------------------------------- data
@data_app.command("generate")
def data_generate(
    out: Annotated[Path, typer.Option(help="output file, .parquet or .csv")],
    scenario: Annotated[str, typer.Option(help="baseline, covariate_shift, unit_bug, ...")] = "baseline",
    rows: Annotated[int, typer.Option(min=1)] = 50_000,
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """Write `rows` transactions of a scenario (a pure function of scenario, rows, seed)."""
    from mlops_lab.data.generator import generate
    from mlops_lab.data.io import write_frame

    frame = generate(scenario, rows, seed)
    write_frame(frame, out)
    console.print(
        f"wrote {len(frame):,} rows of [bold]{scenario}[/] to {out} "
        f"(fraud rate {frame['is_fraud'].mean():.2%})"
    )


@data_app.command("labels")
def data_labels(
    concept: Annotated[
        str, typer.Option(help="ground truth to label with: baseline or concept_drift")
    ] = "baseline",
) -> None:
    """Deliver the chargeback labels that have arrived by now into the store."""
    from mlops_lab.data.labels import deliver_arrived
    from mlops_lab.store.db import Store

    s = _settings()
    added, in_flight = deliver_arrived(Store(s.resolved_store_url), s.label_delay_s, concept)
    console.print(f"{added} labels arrived; {in_flight} still in flight")


# ---------------------------------------------------------------- lifecycle
@app.command()
def train(
    data: Annotated[Path, typer.Option(help="training data, .parquet or .csv")],
    promote: Annotated[
        bool, typer.Option(help="move @champion to the new version if the gate passes")
    ] = False,
    reason: Annotated[str, typer.Option(help="why (goes to the audit log)")] = "manual training",
    flavour: Annotated[
        Literal["sklearn", "torch"] | None,
        typer.Option(help="model flavour (default: MLOPS_MODEL_FLAVOUR, else sklearn); torch: docs/gpu.md"),
    ] = None,
    device: Annotated[
        Literal["auto", "cpu", "cuda"] | None,
        typer.Option(help="torch device (default: MLOPS_MODEL_DEVICE, else auto = cuda if available)"),
    ] = None,
) -> None:
    """Train, log to MLflow, register a version, gate it against the champion."""
    from mlops_lab.data.io import read_frame
    from mlops_lab.lifecycle.registry import default_actor
    from mlops_lab.lifecycle.release import train_and_release

    s = _settings()
    overrides = {"model_flavour": flavour, "model_device": device}
    s = s.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    frame = read_frame(data)
    rel = train_and_release(
        s, frame, promote=promote, actor=default_actor(), reason=reason, lineage={"trigger_reason": reason}
    )
    m = rel.trained.metrics
    console.print(
        f"registered [bold]{s.model_name} v{rel.trained.version}[/] (run {rel.trained.run_id[:8]}): "
        f"PR-AUC {m['pr_auc']:.3f}, recall {m['recall']:.3f} at threshold {rel.trained.threshold:.3f}"
        f" ({s.model_flavour})"
    )
    for c in rel.verdict.checks:
        console.print(f"  gate {'[green]pass[/]' if c.passed else '[red]FAIL[/]'} {c.name}: {c.detail}")
    if promote:
        if rel.promoted:
            console.print(f"@champion -> v{rel.trained.version} (was {rel.champion_before or 'none'})")
        else:
            raise UserError(f"gate failed; @champion stays at {rel.champion_before or 'none'}")


@registry_app.command("list")
def registry_list() -> None:
    """Every version with its aliases, gate verdict and lineage."""
    from mlops_lab.lifecycle.registry import list_versions
    from mlops_lab.lifecycle.tracking import client_for

    s = _settings()
    table = Table("version", "aliases", "created", "threshold", "gate", "data", "code")
    for v in list_versions(client_for(s), s.model_name):
        table.add_row(
            v.version,
            ",".join(v.aliases),
            f"{v.created:%Y-%m-%d %H:%M:%S}",
            v.tags.get("decision_threshold", ""),
            v.tags.get("gate", "")[:40],
            v.tags.get("data_fingerprint", ""),
            v.tags.get("code_version", ""),
        )
    console.print(table)


@registry_app.command("promote")
def registry_promote(
    version: str,
    reason: Annotated[str, typer.Option()] = "manual promotion",
) -> None:
    """Point @champion at VERSION (audited)."""
    from mlops_lab.lifecycle import registry
    from mlops_lab.lifecycle.tracking import client_for
    from mlops_lab.store.db import Store

    s = _settings()
    prev = registry.promote(
        client_for(s),
        Store(s.resolved_store_url),
        s.model_name,
        version,
        actor=registry.default_actor(),
        reason=reason,
    )
    console.print(f"@champion -> v{version} (was {prev or 'none'})")


@registry_app.command("rollback")
def registry_rollback(reason: Annotated[str, typer.Option()] = "manual rollback") -> None:
    """Return @champion to the previous champion (from the audit log)."""
    from mlops_lab.lifecycle import registry
    from mlops_lab.lifecycle.tracking import client_for
    from mlops_lab.store.db import Store

    s = _settings()
    target = registry.rollback(
        client_for(s),
        Store(s.resolved_store_url),
        s.model_name,
        actor=registry.default_actor(),
        reason=reason,
    )
    console.print(f"@champion -> v{target} (rolled back)")


@registry_app.command("history")
def registry_history() -> None:
    """Which version served when, and why (the audit log)."""
    from mlops_lab.lifecycle import registry
    from mlops_lab.store.db import Store

    s = _settings()
    table = Table("time (UTC)", "actor", "action", "alias", "version", "previous", "reason")
    for e in registry.history(Store(s.resolved_store_url), s.model_name):
        d = e["details"]
        table.add_row(
            f"{e['ts']:%Y-%m-%d %H:%M:%S}",
            e["actor"],
            e["action"],
            d.get("alias", ""),
            str(d.get("version", "")),
            str(d.get("previous") or ""),
            d.get("reason", ""),
        )
    console.print(table)


# ---------------------------------------------------------------- serving
def _serve_forever(app_: Any, host: str, port: int) -> None:
    """One uvicorn worker in the foreground (scale by processes), lifespan on, 30 s to drain."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        app_,
        host=host,
        port=port,
        workers=1,
        access_log=False,
        log_level="info",
        lifespan="on",
        timeout_graceful_shutdown=30,
    )


@app.command()
def serve(
    variant: Annotated[
        str, typer.Option(help="stable serves @champion, canary serves @challenger")
    ] = "stable",
    port: Annotated[int | None, typer.Option(help="default: the variant's port setting")] = None,
    impl: Annotated[
        str, typer.Option(help="reference, or exercises: your lab 1 app.py + holder.py")
    ] = "reference",
) -> None:
    """Run one model server (one uvicorn worker) in the foreground."""
    from mlops_lab.serving.app import ALIAS_OF, create_app

    if variant not in ("stable", "canary"):
        raise typer.BadParameter("variant must be stable or canary")
    which = cast(Variant, variant)
    s = _settings()
    if impl == "reference":
        app_ = create_app(s, which)
    else:
        from mlops_lab.labs.impl import load_exercise

        holder = load_exercise("model-holder", impl).ModelHolder(s, ALIAS_OF[which])
        app_ = load_exercise("predict-endpoint", impl).create_app(s, which, holder=holder)
    _serve_forever(app_, s.host, port or s.port_of(which))


@app.command()
def monitor(
    port: Annotated[int | None, typer.Option(help="default: the monitor_port setting")] = None,
) -> None:
    """Run the drift monitor (one uvicorn worker) in the foreground: windows, gauges, retraining."""
    from mlops_lab.monitoring.service import create_monitor_app

    s = _settings()
    _serve_forever(create_monitor_app(s), s.host, port or s.monitor_port)


@app.command("batch-predict")
def batch_predict(
    input: Annotated[Path, typer.Option(help=".parquet or .csv with the schema's columns")],
    output: Annotated[Path, typer.Option(help=".parquet or .csv")],
    model: Annotated[
        str, typer.Option(help="models:/name@alias or models:/name/version")
    ] = "models:/fraud-detector@champion",
    chunk_rows: Annotated[int, typer.Option(min=1)] = 50_000,
) -> None:
    """Score a file in chunks; atomic output; re-running with the same input and model is a no-op."""
    from mlops_lab.serving.batch import batch_predict as run

    res = run(_settings(), model, input, output, chunk_rows=chunk_rows, show_progress=sys.stderr.isatty())
    what = "already up to date" if res.skipped else "wrote"
    console.print(
        f"{what}: {res.output} ({res.rows:,} rows, {res.flagged:,} flagged, model v{res.model_version})"
    )


# ---------------------------------------------------------------- pipeline
@app.command()
def retrain(
    reason: Annotated[str, typer.Option(help="why (lineage tag and audit log)")] = "manual retrain",
    in_process: Annotated[
        bool, typer.Option("--in-process", help="run the steps in this process instead of airflow dags test")
    ] = False,
    run_id: Annotated[
        str | None, typer.Option(help="resume this pipeline run (skips finished steps)")
    ] = None,
) -> None:
    """Run the retraining pipeline once; a version that passes is staged as @challenger."""
    from mlops_lab.pipeline.trigger import RetrainAlreadyRunning, RetrainError
    from mlops_lab.pipeline.trigger import retrain as run

    s = _settings()
    try:
        result = run(s, reason, in_process=in_process, run_id=run_id)
    except (RetrainAlreadyRunning, RetrainError) as exc:
        raise UserError(str(exc)) from exc
    if not result.ok:
        raise UserError(result.summary())
    console.print(result.summary())


# ---------------------------------------------------------------- canary
@app.command()
def route(port: Annotated[int | None, typer.Option(help="default: the router_port setting")] = None) -> None:
    """Run the canary router (weighted, sticky, shadow, passive health) in the foreground."""
    from mlops_lab.canary.router import create_router

    s = _settings()
    _serve_forever(create_router(s), s.host, port or s.router_port)


@canary_app.command("run")
def canary_run() -> None:
    """The controller daemon: rolls out every new @challenger (what `mlops-lab up` starts)."""
    import signal
    import threading

    from mlops_lab.canary.controller import run_daemon

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_daemon(_settings(), stop)
    except RuntimeError as exc:
        raise UserError(str(exc)) from exc


@canary_app.command("start")
def canary_start(
    version: Annotated[str | None, typer.Option(help="stage this version as @challenger first")] = None,
    reason: Annotated[str, typer.Option()] = "manual canary",
) -> None:
    """Roll out @challenger: in the foreground, or by the running controller daemon."""
    import threading

    from mlops_lab.canary.controller import Controller, controller_lock
    from mlops_lab.canary.stage import stage
    from mlops_lab.lifecycle import registry

    s = _settings()
    if version is not None:
        stage(s, version, actor=registry.default_actor(), reason=reason)
        console.print(f"@challenger -> v{version}")
    with controller_lock(s) as mine:
        if not mine:
            console.print(
                "the controller daemon is running and will roll it out: follow with `mlops-lab canary status`"
            )
            return
        controller = Controller(
            s, on_transition=lambda r: console.print(f"[bold]{r.phase}[/] {r.describe()}")
        )
        try:
            controller.run(threading.Event(), until_done=True)
        finally:
            controller.close()
    r = controller.state.rollout
    if r is None:
        raise UserError("nothing to roll out: no @challenger that differs from @champion and was not judged")
    if r.phase != "promoted":
        raise UserError(f"rolled back: {r.reason}")


@canary_app.command("status")
def canary_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The current or last rollout, its looks, and the router's weights."""
    import json as _json

    from mlops_lab.canary.controller import Services, load_state

    s = _settings()
    state = load_state(s)
    services = Services(s)
    try:
        router: dict[str, object] | str = services.router_state()
    except httpx.HTTPError as exc:
        router = f"unreachable ({exc.__class__.__name__})"
    finally:
        services.close()
    if as_json:
        console.print_json(_json.dumps({**state.to_json(), "router": router}))
        return
    r = state.rollout
    console.print(f"rollout: {r.describe() if r else 'none yet'}")
    if r is not None:
        for look in r.looks[-5:]:
            console.print(
                f"  look at {look['weight']}% ({look['phase']}): {look['verdict']} {look['reason']}"
            )
        if r.last_error:
            console.print(f"  retrying after: {r.last_error}")
    console.print(f"router: {router}")
    for version, outcome in sorted(state.judged.items(), key=lambda kv: int(kv[0])):
        console.print(f"  v{version}: {outcome}")


@canary_app.command("abort")
def canary_abort(reason: Annotated[str, typer.Option()] = "aborted by operator") -> None:
    """Roll the current canary back now (the daemon acts within a poll; else done here)."""
    from mlops_lab.canary.controller import Controller, controller_lock, load_state, request_abort

    s = _settings()
    r = load_state(s).rollout
    if r is None or not r.active:
        raise UserError("no rollout in progress")
    request_abort(s, reason)
    with controller_lock(s) as mine:
        if mine:
            controller = Controller(s)
            try:
                controller.tick()
            finally:
                controller.close()
            console.print(controller.state.rollout.describe() if controller.state.rollout else "done")
        else:
            console.print("abort requested: the controller daemon rolls back within one poll")


# ---------------------------------------------------------------- runtime
@app.command()
def up(
    only: Annotated[
        list[str] | None, typer.Option("--only", help="start just these (repeatable), e.g. --only mlflow")
    ] = None,
    prometheus: Annotated[bool, typer.Option("--prometheus/--no-prometheus")] = True,
) -> None:
    """Start the local system (MLflow, stable and canary servers, router, monitor, canary
    controller, and Prometheus when installed) and wait until each is healthy."""
    from mlops_lab.runtime.supervisor import Supervisor, system_specs

    s = _settings()
    specs = system_specs(s, with_prometheus=prometheus)
    names = [spec.name for spec in specs]
    unknown = set(only or []) - set(names)
    if unknown:
        raise typer.BadParameter(
            f"unknown component(s) {', '.join(sorted(unknown))}; choose from {', '.join(names)}"
        )
    specs = [spec for spec in specs if not only or spec.name in only]
    sup = Supervisor(s)
    if specs and specs[0].name == "mlflow":  # the others read the registry when they start
        sup.start(specs.pop(0))
        console.print(f"{'mlflow':10} up at {s.mlflow_server_uri}")
    sup.start_all(specs)
    for spec in specs:
        console.print(f"{spec.name:10} up at http://{s.host}:{spec.port}")
    if not only or "stable" in only:
        console.print(
            "model servers are ready once @champion (stable) / @challenger (canary) exist: see /readyz"
        )


@app.command()
def down() -> None:
    """Stop every process `up` started (also after a crash); leaves nothing behind."""
    from mlops_lab.runtime.supervisor import Supervisor

    stopped = Supervisor(_settings()).stop_all()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What runs, on which port, and whether it is healthy."""
    from mlops_lab.runtime.supervisor import Supervisor

    rows = Supervisor(_settings()).status()
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("component", "pid", "port", "alive", "healthy", "log")
    for r in rows:
        table.add_row(
            str(r["name"]), str(r["pid"]), str(r["port"]), str(r["alive"]), str(r["healthy"]), str(r["log"])
        )
    console.print(table if rows else "nothing is running")


@app.command()
def load(
    host: Annotated[str | None, typer.Option(help="default: the stable server")] = None,
    users: Annotated[int, typer.Option(min=1)] = 8,
    duration: Annotated[str, typer.Option(help="e.g. 20s, 2m")] = "20s",
    scenario: Annotated[str, typer.Option()] = "baseline",
) -> None:
    """Drive locust (headless) against a server and print the SLO report."""
    from mlops_lab.runtime.load import run_load

    s = _settings()
    target = host or f"http://{s.host}:{s.stable_port}"
    report = run_load(
        s, target, s.home / "reports" / "load", users=users, duration=duration, scenario=scenario
    )
    console.print(report.markdown())
    if not report.slo_met:
        raise UserError("SLO missed")


@app.command()
def demo(
    profile: Annotated[str, typer.Option(help="full or short (the end-to-end test's profile)")] = "full",
) -> None:
    """Play the reference story locally; exits non-zero if it did not play out."""
    from mlops_lab.runtime.demo import StoryFailed, run_demo

    try:
        run_demo(_settings(), profile=profile, console=console)
    except StoryFailed as exc:
        raise UserError(f"the story did not play out: {exc}") from exc


@store_app.command("replay-spill")
def store_replay_spill() -> None:
    """Load predictions spilled to home/spill/*.jsonl (database down at shutdown) into the store."""
    from mlops_lab.store.db import Store
    from mlops_lab.store.writer import replay_spill

    s = _settings()
    n = replay_spill(Store(s.resolved_store_url), s.home / "spill")
    console.print(f"replayed {n} spilled predictions")


def main() -> None:
    """Entry point: one-line errors instead of tracebacks for failures a user can act on."""
    warnings.filterwarnings("ignore")
    from mlflow.exceptions import MlflowException

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # after import: MLflow sets INFO on import

    from mlops_lab.lifecycle.registry import RegistryError
    from mlops_lab.runtime.supervisor import StartError

    try:
        # Standalone mode: typer reports usage errors itself (one message, exit 2) and
        # lets every other exception reach the handlers below.
        app()
    except KeyboardInterrupt:
        err.print("aborted")
        sys.exit(130)
    except (UserError, LabError, RegistryError, StartError, FileNotFoundError, ValueError) as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        sys.exit(1)
    except MlflowException as exc:
        err.print(f"error: MLflow: {str(exc).splitlines()[0]}", highlight=False, markup=False)
        sys.exit(1)
    except (ConnectionError, httpx.HTTPError) as exc:
        err.print(f"error: cannot connect: {exc}", highlight=False, markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
