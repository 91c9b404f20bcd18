"""`mlops-lab canary judge-api` as a real process: started by the supervisor from its
ProcessSpec, asked over HTTP by an engine's look, stopped. The verdicts themselves are
tests/unit/test_judge_api.py's; here, the command, the spec and the wire."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from mlops_lab.lifecycle.tracking import CHAMPION, client_for
from mlops_lab.runtime.supervisor import Supervisor, judge_api_spec
from mlops_lab.store.db import Store

from ..conftest import free_port, make_settings


def test_the_judge_api_process_answers_a_look_and_keeps_its_state(tmp_path: Path) -> None:
    s = make_settings(tmp_path, store_url=f"sqlite:///{tmp_path / 'store.db'}")
    s = s.model_copy(update={"tracking_uri": s.mlflow_sqlite_uri})
    client = client_for(s)
    client.create_registered_model(s.model_name)
    for _ in range(2):
        client.create_model_version(s.model_name, source=(tmp_path / "model").as_uri())
    client.set_registered_model_alias(s.model_name, CHAMPION, "1")
    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    rows = [
        {
            "request_id": uuid.uuid4().hex,
            "ts": now,
            "variant": variant,
            "model_version": version,
            "features": {},
            "score": float(1 / (1 + np.exp(-rng.normal(-3.0, 1.0)))),
            "decision": False,
            "latency_ms": 2.0,
        }
        for variant, version, n in (("stable", "1", 3000), ("canary", "2", 2000))
        for _ in range(n)
    ]
    Store(s.resolved_store_url).insert_predictions(rows)

    port = free_port()
    sup = Supervisor(s)
    sup.start(judge_api_spec(s, port=port))
    try:
        url = f"http://{s.host}:{port}/v1/rollouts/sys/verdict"
        first = httpx.get(url, params={"candidate": "2"}, timeout=30).json()
        assert first["verdict"] == "PASS" and first["champion"] == "1", first
        again = httpx.get(url, params={"candidate": "2"}, timeout=30).json()
        # All the planned samples are in: the design is complete, its PASS stands, spending nothing.
        assert again["verdict"] == "PASS" and again["alpha_spent"] == 0.0, again
        bad = httpx.get(url, params={"candidate": "two"}, timeout=30)
        assert bad.status_code == 422
    finally:
        sup.stop_all()
    assert (s.home / "canary" / "judge-api" / "sys.json").exists()
