"""The canary router's card id header (X-Card-Id), through real HTTP: the router under uvicorn in
front of two small recording model servers (uvicorn too), each keeping every request it got.

What is required: with the header the router routes on it (sticky, the same split as the body's
card_id gives), forwards the body byte for byte and, when header and body disagree, follows the
header; without it the body routes as before; shadow mode and passive health are the same
either way. Also here: the system's own traffic (load.traffic, bench.loadgen) sends the header.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn

from mlops_lab.bench import loadgen
from mlops_lab.canary.router import create_router
from mlops_lab.canary.split import bucket_of
from mlops_lab.canary.weights import CARD_ID_HEADER, SHADOW_SUFFIX
from mlops_lab.load.traffic import Traffic
from mlops_lab.settings import Settings
from tests.conftest import TOKEN, make_settings

from ..support.asgi import read_body

IN_A_ROW = 3  # router_unhealthy_after here
CARDS = [f"card-{i:04d}" for i in range(200)]


@dataclass
class Seen:
    body: bytes
    headers: dict[str, str]


@dataclass
class Recorder:
    """A model server stand-in: answers /v1/predict with its variant (500 when `failing`, 422 for
    a body that is not a JSON object) and keeps the raw body and headers of every request."""

    variant: str
    failing: bool = False
    seen: list[Seen] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.seen.append(Seen(body, headers))
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if self.failing:
            status, payload = 500, {"detail": "broken"}
        elif scope["path"] == "/readyz":
            status, payload = 200, {"ready": True}
        elif not isinstance(parsed, dict):
            status, payload = 422, {"detail": "not a JSON object"}
        else:
            status, payload = 200, {"variant": self.variant, "request_id": parsed.get("request_id")}
        data = json.dumps(payload).encode()
        start = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": start})
        await send({"type": "http.response.body", "body": data})

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(s.body) for s in self.seen if s.body]


class Serving:
    """An ASGI app under a real uvicorn in a thread, on a free port."""

    def __init__(self, app: Any, port: int, lifespan: str = "off") -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan=lifespan, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.server.started, "a test server did not start"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@dataclass
class System:
    s: Settings
    stable: Recorder
    canary: Recorder
    client: httpx.Client

    def weights(self, **body: Any) -> None:
        body = {"canary_weight": 0, "shadow": False, "actor": "tests", **body}
        self.client.post("/admin/weights", json=body, headers=TOKEN).raise_for_status()

    def predict(self, body: bytes, card: str | None = None, **headers: str) -> httpx.Response:
        if card is not None:
            headers[CARD_ID_HEADER] = card
        return self.client.post(
            "/v1/predict", content=body, headers={"content-type": "application/json", **headers}
        )

    def state(self) -> dict[str, Any]:
        return self.client.get("/admin/state", headers=TOKEN).json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    stable, canary = Recorder("stable"), Recorder("canary")
    s = make_settings(
        tmp_path_factory.mktemp("router"),
        router_unhealthy_after=IN_A_ROW,
        router_probe_after_s=3_600.0,  # no probe within a test: what is counted is exact
        router_timeout_s=5.0,
    )
    servers = [Serving(stable, s.stable_port), Serving(canary, s.canary_port)]
    servers.append(Serving(create_router(s), s.router_port, lifespan="on"))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{s.router_port}", timeout=10) as client:
            yield System(s, stable, canary, client)
    finally:
        for server in reversed(servers):
            server.stop()


@pytest.fixture
def system(running: System) -> System:
    running.stable.failing = running.canary.failing = False
    running.weights()  # everything to stable, and a healthy canary for the next rollout
    running.stable.seen.clear()
    running.canary.seen.clear()
    return running


def body_of(card: str, rid: str, extra: str = "") -> bytes:
    """A prediction body with odd spacing and key order: re-serializing it would show."""
    return f'{{ "request_id":"{rid}",  "amount": 42.50, "card_id": "{card}"{extra} }}'.encode()


def test_the_header_routes_sticky_and_the_body_goes_through_byte_for_byte(system: System) -> None:
    system.weights(canary_weight=25)
    sent: dict[str, list[bytes]] = {}
    for round_ in range(3):
        for card in CARDS[:60]:
            body = body_of(card, f"h{round_}-{card}")
            r = system.predict(body, card)
            assert r.status_code == 200
            expected = "canary" if bucket_of(card) < 25 else "stable"
            assert r.headers["x-mlops-variant"] == r.json()["variant"] == expected, card
            sent.setdefault(expected, []).append(body)
    assert sent["canary"] and sent["stable"]
    assert [s.body for s in system.canary.seen] == sent["canary"]  # the very bytes, in order
    assert [s.body for s in system.stable.seen] == sent["stable"]


def test_header_and_body_send_each_card_to_the_same_side(system: System) -> None:
    system.weights(canary_weight=50)
    for card in CARDS[:80]:
        by_header = system.predict(body_of(card, f"a-{card}"), card).headers["x-mlops-variant"]
        by_body = system.predict(body_of(card, f"b-{card}")).headers["x-mlops-variant"]
        assert by_header == by_body, f"{card}: header -> {by_header}, body -> {by_body}"


def test_the_header_wins_when_it_disagrees_with_the_body(system: System) -> None:
    system.weights(canary_weight=50)
    to_canary = next(c for c in CARDS if bucket_of(c) < 50)
    to_stable = next(c for c in CARDS if bucket_of(c) >= 50)
    body = body_of(to_stable, "disagree-1")
    r = system.predict(body, to_canary)
    assert r.headers["x-mlops-variant"] == "canary"
    assert [s.body for s in system.canary.seen] == [body]  # forwarded unchanged, body's card and all
    r = system.predict(body_of(to_canary, "disagree-2"), to_stable)
    assert r.headers["x-mlops-variant"] == "stable"


def test_without_the_header_the_body_routes_as_before(system: System) -> None:
    system.weights(canary_weight=50)
    for card in CARDS[:40]:
        r = system.predict(body_of(card, f"n-{card}"))
        assert r.headers["x-mlops-variant"] == ("canary" if bucket_of(card) < 50 else "stable")
    # No card_id: the request id is the entity; not JSON: stable, whose 422 says why.
    rid = next(f"rid-{i}" for i in range(1000) if bucket_of(f"rid-{i}") < 50)
    r = system.predict(json.dumps({"request_id": rid, "amount": 1.0}).encode())
    assert r.headers["x-mlops-variant"] == "canary"
    garbled = system.predict(b"not json")
    assert garbled.status_code == 422 and garbled.headers["x-mlops-variant"] == "stable"
    # An empty header is no header.
    card = next(c for c in CARDS if bucket_of(c) < 50)
    assert system.predict(body_of(card, "empty"), "").headers["x-mlops-variant"] == "canary"


def test_a_body_that_is_not_json_follows_its_header(system: System) -> None:
    """The router does not read the body when the header names the card: the model server that
    gets it answers with its own 422, byte for byte what the client sent reaching it."""
    system.weights(canary_weight=50)
    card = next(c for c in CARDS if bucket_of(c) < 50)
    r = system.predict(b"not json", card)
    assert r.status_code == 422 and r.headers["x-mlops-variant"] == "canary"
    assert [s.body for s in system.canary.seen] == [b"not json"]


def test_shadow_mode_is_the_same_with_and_without_the_header(system: System) -> None:
    system.weights(shadow=True)
    rids = [f"s-{i}" for i in range(20)]
    for i, rid in enumerate(rids):
        card = CARDS[i]
        r = system.predict(body_of(card, rid), card if i % 2 else None)
        assert r.status_code == 200 and r.headers["x-mlops-variant"] == r.json()["variant"] == "stable"
    no_id = system.predict(json.dumps({"card_id": CARDS[0], "amount": 3.0}).encode(), CARDS[0])
    assert no_id.status_code == 200
    given = no_id.json()["request_id"]  # the router gave it one, to pair the two copies
    assert given
    deadline = time.monotonic() + 10
    while len(system.canary.seen) < len(rids) + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    copies = sorted(b["request_id"] for b in system.canary.bodies())
    assert copies == sorted([r + SHADOW_SUFFIX for r in rids] + [given + SHADOW_SUFFIX])
    assert sorted(b["request_id"] for b in system.stable.bodies()) == sorted([*rids, given])
    garbled = system.predict(b"not json", CARDS[1])  # not parsed: stable's 422, no copy
    assert garbled.status_code == 422 and garbled.headers["x-mlops-variant"] == "stable"
    time.sleep(0.2)
    assert len(system.canary.seen) == len(rids) + 1


def test_a_failing_canary_falls_back_and_leaves_rotation_with_the_header(system: System) -> None:
    system.canary.failing = True
    system.weights(canary_weight=50)
    before = system.state()["counts"]["canary"]["errors"]
    for i, card in enumerate(CARDS[:60]):
        r = system.predict(body_of(card, f"f-{i}"), card)
        assert r.status_code == 200 and r.headers["x-mlops-variant"] == r.json()["variant"] == "stable"
    state = system.state()
    assert len(system.canary.seen) == IN_A_ROW, "then out of rotation (the probe is an hour away)"
    assert state["canary_healthy"] is False
    assert state["counts"]["canary"]["errors"] - before == IN_A_ROW
    metrics = system.client.get("/metrics").text
    assert "mlops_router_canary_healthy 0.0" in metrics
    assert 'mlops_router_requests_total{outcome="fallback",variant="stable"}' in metrics


def test_the_client_id_and_request_id_reach_the_model_server(system: System) -> None:
    system.predict(body_of(CARDS[0], "c-1"), CARDS[0], **{"x-request-id": "abc", "x-client-id": "acme"})
    system.predict(body_of(CARDS[0], "c-2"), CARDS[0])
    first, second = system.stable.seen
    assert first.headers["x-request-id"] == "abc" and first.headers["x-client-id"] == "acme"
    assert second.headers["x-client-id"] == "127.0.0.1"  # the caller's address when it named none
    assert CARD_ID_HEADER not in first.headers  # routing information stays at the router


def test_the_system_traffic_sends_the_card_id_header(system: System) -> None:
    """load.traffic (the demo's and the canary tests' stream) and bench.loadgen name the card in
    the header, equal to the body's card_id, so the router routes them without a parse."""
    traffic = Traffic(f"http://127.0.0.1:{system.s.stable_port}", 40, concurrency=2).start()
    time.sleep(0.6)
    traffic.stop()
    assert system.stable.seen
    for seen in system.stable.seen:
        assert seen.headers[CARD_ID_HEADER] == json.loads(seen.body)["card_id"]
    raw = loadgen.encode_request(
        "127.0.0.1", 1, "POST", "/v1/predict", b"{}", headers={CARD_ID_HEADER: "card-7"}
    )
    assert b"\r\nx-card-id: card-7\r\n" in raw and raw.endswith(b"\r\n\r\n{}")
