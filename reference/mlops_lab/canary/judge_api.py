"""The canary judge over HTTP: one verdict per rollout, for a progressive-delivery engine.

    mlops-lab canary judge-api                        # :8005, one uvicorn worker
    curl -s '127.0.0.1:8005/v1/rollouts/ab12cd/verdict?candidate=3&champion=2' | python -m json.tool
    curl -s '127.0.0.1:8005/v1/rollouts/ab12cd'       # the rollout's judge state and its looks

Or under the supervisor: `Supervisor(settings).start(judge_api_spec(settings))` (runtime.supervisor).
Kubernetes: reference/k8s/components/argo-rollouts (an Argo Rollouts `web` metric asks it).

`GET /v1/rollouts/{rollout_id}/verdict` answers one look: it reads the prediction store since
`since`, splits the rows into stable and canary with `canary.evidence.judge_frame`, and judges
them with `canary.judge.judge` (or a learner's, `--impl exercises`). The JSON carries the
verdict (PASS, FAIL, INCONCLUSIVE), the reason, every check, the canary samples, the alpha this
look spent and the information fraction reached. Query parameters:

  candidate   the version being rolled out (required)
  champion    the version it is compared with; default: @champion in the registry
  since       ISO time the judge reads from; default: the candidate's first prediction in
              this mode (a '+' sent unencoded arrives as a space, and is read back as '+')
  mode        split (a share of real traffic, the default) or paired (shadow: the router's
              mirrored rows, `<request_id>:shadow`, paired with stable's answer)
  by          how stable and canary rows are told apart. variant (default): the `variant`
              column, as this project's stable and canary servers log it. version: the model
              version alone, for engines where every pod logs the same variant: an Argo
              Rollouts canary is a new ReplicaSet of the same pod template, so its pods run
              the same `--variant` as the stable ones (and a label read at start would be
              stale after promotion); there the version is the only thing that tells them apart.

Why a server and not a script: the judge is sequential, and the fraction reached at one look
must reach the next, whoever asks (`canary.judge_service` keeps it per rollout, in a file
under home/canary/judge-api/, and says what is pinned at the first look). The expectation is
the candidate's `canary_expectation` registry tag, the champion @champion unless given.

Answers: 200 with the verdict (INCONCLUSIVE is a 200: "not yet", never a pass); 422 with field
errors for bad parameters; 409 when a parameter contradicts what the rollout pinned at its first
look (start a new rollout id for another candidate or window); 503 with Retry-After while the
prediction store or the registry cannot be reached, which an engine counts as a measurement
error, not a verdict. Never a PASS on fewer than `canary_min_samples` canary samples, whoever
wrote the judge. The error-rate check sees no failed requests here (the store only holds
answered ones; the router's counters are the controller's): pair it with the engine's own
request-success metric.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mlops_lab.canary.judge_service import (
    By,
    Conflict,
    Invalid,
    JudgeService,
    Look,
    Mode,
    Registry,
    Unavailable,
    jsonable,
    parse_time,
)
from mlops_lab.errors import BrokenStateFile
from mlops_lab.parts import Part
from mlops_lab.settings import Settings
from mlops_lab.store.db import Store

DEFAULT_PORT = 8005  # beside the controller's 8004: both may run while one is compared with the other
ROLLOUT_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # it names a file: no '/', never '..' alone
VERSION = r"^[0-9]{1,9}$"  # MLflow model versions are integers


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    registry: Registry | None = None,
    part: Part = importlib.import_module,
) -> FastAPI:
    """The judge API. `store` and `registry` default to the settings'; `part` says whose judge
    decides (the reference's unless a learner's, as for the controller)."""
    service = JudgeService(settings, store=store, registry=registry, part=part)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()

    app = FastAPI(
        title="mlops-lab canary judge",
        description="The canary judge's verdict per rollout, for a progressive-delivery engine.",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Any, exc: RequestValidationError) -> JSONResponse:
        return _field_errors(exc.errors())

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/rollouts/{rollout_id}/verdict")
    def verdict(
        rollout_id: Annotated[str, PathParam(pattern=ROLLOUT_ID)],
        candidate: Annotated[str, Query(pattern=VERSION)],
        champion: Annotated[str | None, Query(pattern=VERSION)] = None,
        since: Annotated[str | None, Query(max_length=64)] = None,
        mode: Mode = "split",
        by: By = "variant",
    ) -> JSONResponse:
        """One look at the rollout: the verdict, its reason, every check, the alpha it spent."""
        if by == "version" and champion is not None and champion == candidate:
            return _field_error(
                ["query", "champion"], "by=version needs the champion to differ from the candidate"
            )
        start = None
        if since is not None:
            start = parse_time(since.replace(" ", "+"))
            if start is None:
                return _field_error(["query", "since"], "an ISO 8601 time, e.g. 2026-01-31T12:00:00Z")
        try:
            body = service.look(Look(rollout_id, candidate, champion, start, mode, by))
        except Invalid as exc:
            return _field_error(exc.loc, exc.msg)
        except Conflict as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)
        except BrokenStateFile as exc:
            return JSONResponse({"detail": str(exc)}, status_code=500)
        except Unavailable as exc:
            service.metrics.unavailable.labels(exc.what).inc()
            headers = {"retry-after": str(settings.retry_after_s)}
            return JSONResponse({"detail": str(exc)}, status_code=503, headers=headers)
        return JSONResponse(body)

    @app.get("/v1/rollouts/{rollout_id}")
    def rollout(rollout_id: Annotated[str, PathParam(pattern=ROLLOUT_ID)]) -> JSONResponse:
        """The rollout's judge state: what was pinned, the fraction and alpha per mode, the looks."""
        try:
            state = service.state(rollout_id)
        except BrokenStateFile as exc:
            return JSONResponse({"detail": str(exc)}, status_code=500)
        if state is None:
            return JSONResponse({"detail": f"no looks at rollout {rollout_id} yet"}, status_code=404)
        return JSONResponse(jsonable(asdict(state)))

    return app


def _field_errors(errors: Any) -> JSONResponse:
    # Field errors only, as the model server answers them: where, what, the error type; never the input.
    detail = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in errors
    ]
    return JSONResponse({"detail": detail}, status_code=422)


def _field_error(loc: list[str], msg: str) -> JSONResponse:
    return _field_errors([{"loc": loc, "msg": msg, "type": "value_error"}])
