"""Two compatibility fixes that let apache-airflow 3.2.2 run tasks under `airflow dags test` with
the locked fastapi (0.165) and svcs (26.2). Applied only inside the Airflow process.

    python -m mlops_lab.pipeline.airflow_compat      # applies both, then checks what they fix

`airflow dags test` runs each task in-process against an in-process Execution API (a FastAPI
app behind a WSGI bridge). With the locked versions, every task failed before it started:

1. The task-state update body is declared `Annotated[A | B | ..., Field(discriminator=func)]`:
   a *callable* where pydantic expects a field name or a `pydantic.Discriminator`. fastapi up to
   0.156 dropped that metadata; from 0.157 on it hands it to pydantic, which refuses it ("Model
   'TITerminalStatePayload' needs a discriminator field"). Measured here: fastapi 0.156.0 builds
   the API, 0.157.0 and 0.165.0 do not. Fix: rebind the alias with `Discriminator(func)`, the
   documented spelling of the same intent, before the routes import it.
2. `InProcessTestSupervisor._api_client` creates the API, starts its lifespan on the bridge's
   event loop, keeps the transport and drops the API object, which holds the lifespan's exit
   stack. Garbage collection then closes the lifespan at once, and svcs 26.2 (unlike earlier
   releases) removes its registry from `app.state` on exit, so the first request fails with
   "'State' object has no attribute 'svcs_registry'". Fix: one in-process API per process, kept
   alive (its lifespan stays open) and shared by every task. Sharing also removes about 3 s per
   task here: a fresh API answered its first request that much later (measured on a 2-core VM,
   one `dags test` run 52 s -> 31 s).

Both are no-ops when Airflow already does the right thing. The lasting fix is upstream (or
pinning fastapi < 0.157 and svcs < 26.2 in the lock); then this module can go.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any, get_args

log = logging.getLogger(__name__)

_MODELS = "airflow.api_fastapi.execution_api.datamodels.taskinstance"
_ROUTES = "airflow.api_fastapi.execution_api.routes.task_instances"
_SUPERVISOR = "airflow.sdk.execution_time.supervisor"
_SHARED_API: list[Any] = []  # the process's one in-process Execution API, lifespan running


def apply() -> list[str]:
    """Apply the fixes that this Airflow needs; returns their names."""
    applied = []
    if _fix_discriminator():
        applied.append("discriminator")
    if _share_one_api():
        applied.append("one-api-per-process")
    return applied


def _fix_discriminator() -> bool:
    from pydantic import Discriminator
    from pydantic.fields import FieldInfo

    try:
        models: Any = __import__(_MODELS, fromlist=["TIStateUpdate"])
    except ImportError:  # another Airflow layout: nothing to fix here
        return False
    args = get_args(getattr(models, "TIStateUpdate", None))
    if len(args) != 2 or not isinstance(args[1], FieldInfo) or not callable(args[1].discriminator):
        return False
    if _ROUTES in sys.modules:
        log.warning("airflow_compat: %s was imported before the fix; task runs may fail", _ROUTES)
    union, field = args
    models.TIStateUpdate = Annotated[union, Discriminator(field.discriminator)]
    return True


def _share_one_api() -> bool:
    try:
        supervisor: Any = __import__(_SUPERVISOR, fromlist=["in_process_api_server"])
    except ImportError:
        return False
    original = getattr(supervisor, "in_process_api_server", None)
    if original is None or getattr(original, "_mlops_shared", False):
        return False

    def in_process_api_server() -> Any:
        if not _SHARED_API:
            _SHARED_API.append(original())
        return _SHARED_API[0]

    in_process_api_server._mlops_shared = True  # type: ignore[attr-defined]
    supervisor.in_process_api_server = in_process_api_server
    return True


def _main() -> None:
    import gc

    import httpx

    print(f"applied: {', '.join(apply()) or 'nothing'}")
    supervisor: Any = __import__(_SUPERVISOR, fromlist=["in_process_api_server"])
    transport = supervisor.in_process_api_server().transport  # builds the API, starts its lifespan
    gc.collect()
    with httpx.Client(transport=transport, base_url="http://in-process.invalid./") as client:
        status = client.get("health/ping").status_code
    print(f"the in-process Execution API builds and answers (health/ping: {status})")


if __name__ == "__main__":
    _main()
