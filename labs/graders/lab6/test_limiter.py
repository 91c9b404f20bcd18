"""Grader of lab 6 / rate-limiter (exercises/lab6/limiter.py): a token bucket per client.

The limiter is graded through `acquire` and `len` with a fake clock the grader moves by hand
(no sleeping, so nothing here depends on how busy the machine is), and its memory with
tracemalloc. The last three checks run the real model server (`create_app`, with your
RateLimiter as its limiter and a small real model) under a real uvicorn on a free port, in a
thread, and talk to it over HTTP: a real server because the client of a request without
X-Client-Id is its peer address, which only a real socket has (FastAPI's TestClient calls every
peer "testclient"), and because Retry-After must survive a real HTTP stack.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn

from mlops_lab.labs.grading import TinyModel, free_port, loaded_model
from mlops_lab.serving.app import create_app
from mlops_lab.serving.holder import LoadError, ModelHolder
from mlops_lab.serving.schemas import EXAMPLE_REQUEST
from mlops_lab.settings import Settings

RATE, BURST = 10.0, 5
MANY_CLIENTS, KEPT = 100_000, 1_000
START_S = 60  # only bounds a hang: a server starts and loads the prebuilt model in about a second
HTTP_RATE, HTTP_BURST, RETRY_AFTER = 0.05, 2, 7  # one token every 20 s: real time cannot refill it


class Clock:
    """A clock the grader moves: `limiter.clock()` is `now`."""

    def __init__(self) -> None:
        self.now = 1_000.0  # not 0: 0 is no special moment

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def limiter(impl: ModuleType, rate: float = RATE, burst: float = BURST, clients: int = 100) -> Any:
    clock = Clock()
    lim = impl.RateLimiter(rate_per_s=rate, burst=burst, max_clients=clients, clock=clock)
    return lim, clock


def passes(lim: Any, client: str, cost: float = 1) -> bool:
    wait = lim.acquire(client, cost)
    assert isinstance(wait, (int, float)) and wait >= 0, (
        f"expected acquire to return seconds >= 0, got {wait!r}"
    )
    return wait == 0


# ---------------------------------------------------------------- the bucket
def test_burst_then_refused(impl: ModuleType) -> None:
    """a new client may send `burst` requests at once; the next one is refused

    A client never seen starts with a full bucket (burst tokens); each request takes one; with
    fewer tokens than the cost, acquire returns a wait > 0 and takes nothing.
    """
    lim, _ = limiter(impl)
    got = [passes(lim, "c") for _ in range(BURST + 2)]
    assert got == [True] * BURST + [False, False], (
        f"expected {BURST} requests through then refusals (clock not moving), got {got}"
    )


def test_refill_over_time(impl: ModuleType) -> None:
    """tokens come back at rate_per_s: one more request every 1/rate seconds, never more than burst

    Refill when the client shows up: tokens = min(burst, tokens + (now - last) * rate), then
    remember now as last. Without the min(), an idle hour would allow 36,000 requests at once.
    """
    lim, clock = limiter(impl)
    for _ in range(BURST):
        lim.acquire("c")
    clock.advance(1 / RATE * 1.001)
    got = [passes(lim, "c"), passes(lim, "c")]
    assert got == [True, False], f"expected one request through 0.1 s after the bucket emptied, got {got}"
    clock.advance(0.5 / RATE)
    assert not passes(lim, "c"), "expected half a token (0.05 s) not to let a request through"
    clock.advance(0.5 / RATE * 1.01)
    assert passes(lim, "c"), "expected the two halves (0.05 s + 0.05 s) to make one token"
    clock.advance(3_600)
    through = sum(passes(lim, "c") for _ in range(BURST * 4))
    assert through == BURST, (
        f"expected an idle hour to refill the bucket to its burst ({BURST}), got {through} requests through"
    )


def test_over_its_rate_is_refused(impl: ModuleType) -> None:
    """a client at twice its rate for 10 s gets the burst plus rate x 10 s through, not more

    This is the bucket's tolerance: burst at once, then rate_per_s on average. Refused requests
    take no tokens, so a client that keeps asking is not punished beyond its rate either.
    """
    lim, clock = limiter(impl)
    through = 0
    for _ in range(200):  # 20 a second for 10 s
        through += passes(lim, "flood")
        clock.advance(0.05)
    expected = BURST + RATE * 9.95  # the last request is sent 9.95 s after the first
    assert expected - 1.5 <= through <= expected + 1, (
        f"expected about {expected:.1f} requests through (burst {BURST} + {RATE:g}/s x 9.95 s), got {through}"
    )


def test_under_its_rate_never_refused(impl: ModuleType) -> None:
    """a client under its rate is never refused, even with a burst of 1 or in bursts

    At 9 requests a second against 10 a second, 1.11 tokens come back between two requests;
    at 4 requests every 0.5 s (8/s) the burst of 5 absorbs each group.
    """
    lim, clock = limiter(impl, burst=1)
    refused = 0
    for _ in range(540):  # 9 a second for 60 s
        refused += not passes(lim, "steady")
        clock.advance(1 / 9)
    assert refused == 0, f"expected 0 refusals at 9 req/s (rate 10/s, burst 1), got {refused}"
    lim, clock = limiter(impl)
    for _ in range(120):
        refused += sum(not passes(lim, "bursty") for _ in range(4))
        clock.advance(0.5)
    assert refused == 0, f"expected 0 refusals for 4 requests every 0.5 s (rate 10/s, burst 5), got {refused}"


def test_other_clients_unaffected(impl: ModuleType) -> None:
    """a client flooding does not slow down another one: each client has its own bucket

    The bucket is looked up by client_id; one shared bucket (or a global counter) makes every
    client pay for the flood.
    """
    lim, clock = limiter(impl)
    for _ in range(100):
        lim.acquire("flood")
        clock.advance(0.001)
    got = [passes(lim, "calm") for _ in range(BURST)]
    assert got == [True] * BURST, f"expected the other client's full burst ({BURST}) through, got {got}"


def test_batch_costs_its_rows(impl: ModuleType) -> None:
    """a batch costs its row count; a refused batch takes nothing

    acquire(client, cost) compares and takes `cost` tokens, not one. When it refuses, the
    tokens stay: a smaller request may still fit.
    """
    lim, _ = limiter(impl)
    assert passes(lim, "b", 3), "expected a 3-row batch through on a full bucket of 5"
    assert not passes(lim, "b", 3), "expected a second 3-row batch refused (2 tokens left)"
    assert passes(lim, "b", 2), "expected a 2-row batch through: the refused one took nothing"
    assert not passes(lim, "b", 1), "expected the bucket empty after 3 + 2 rows"


def test_retry_after_is_the_wait(impl: ModuleType) -> None:
    """a refusal returns the seconds until enough tokens: waiting that long lets the request through

    (cost - tokens) / rate_per_s, with the tokens refilled up to now: the server sends it as
    Retry-After, so a client that obeys it is let through on its first retry.
    """
    lim, clock = limiter(impl, rate=4, burst=2)
    lim.acquire("r")
    lim.acquire("r")
    waits = [lim.acquire("r")]
    clock.advance(0.1)
    waits.append(lim.acquire("r"))
    waits.append(lim.acquire("r", 2))
    assert waits == pytest.approx([0.25, 0.15, 0.4], abs=1e-6), (
        f"expected waits of 0.25 s (1 token at 4/s), 0.15 s (0.1 s later) and 0.4 s (2 tokens), got {waits}"
    )
    clock.advance(0.15 + 1e-6)
    assert passes(lim, "r"), "expected the request through after waiting what acquire said"


def test_cost_over_the_burst(impl: ModuleType) -> None:
    """a batch bigger than the burst passes on a full bucket and leaves a debt paid before the next

    min(cost, burst) must be there; cost is taken (tokens go below 0). Otherwise a batch over
    the burst is refused forever, or lets a client beat its rate.
    """
    lim, clock = limiter(impl)
    assert passes(lim, "big", 8), f"expected an 8-row batch through on a full bucket (burst {BURST})"
    wait = lim.acquire("big")
    assert wait == pytest.approx(0.4, abs=1e-6), (
        f"expected the next request to wait 0.4 s (a debt of 3 tokens, +1, at 10/s), got {wait!r}"
    )
    clock.advance(1.0 + 1e-6)  # -3 + 10 tokens, capped at the burst: 5
    lim.acquire("big", 1)
    wait = lim.acquire("big", 8)
    assert wait == pytest.approx(0.1, abs=1e-6), (
        f"expected an 8-row batch on 4 tokens to wait for a full bucket (0.1 s), got {wait!r}"
    )


def test_invalid_settings_refused(impl: ModuleType) -> None:
    """a rate of 0, a burst under 1, no clients, or a negative cost is a ValueError

    A rate of 0 divides by zero in the wait; the server builds no limiter when the setting is 0.
    """
    for bad in ({"rate_per_s": 0}, {"rate_per_s": -1}, {"burst": 0}, {"max_clients": 0}):
        args = {"rate_per_s": RATE, "burst": BURST, "max_clients": 10, **bad}
        with pytest.raises(ValueError):
            impl.RateLimiter(**args)
    lim, _ = limiter(impl)
    with pytest.raises(ValueError):
        lim.acquire("c", -1)


# ---------------------------------------------------------------- bounded state
def test_state_bounded(impl: ModuleType) -> None:
    """100,000 client ids keep at most max_clients buckets: len and memory stay bounded

    Each new client beyond max_clients forgets the least recently seen one. A dict that only
    grows is a memory leak any scanner can trigger (one X-Client-Id per request).
    """
    lim, clock = limiter(impl, clients=KEPT)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(KEPT):
            lim.acquire(f"client-{i}")
        at_kept = tracemalloc.get_traced_memory()[0] - base
        for i in range(KEPT, MANY_CLIENTS):
            lim.acquire(f"client-{i}")
            if i % 1_000 == 0:
                clock.advance(0.001)
        at_many = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(lim) <= KEPT, (
        f"expected at most {KEPT:,} buckets after {MANY_CLIENTS:,} clients, got {len(lim):,}"
    )
    assert at_many <= 3 * at_kept + 65_536, (
        f"expected the memory for {MANY_CLIENTS:,} clients about that for {KEPT:,} (bounded), got "
        f"{at_many / 1e6:.2f} MB against {at_kept / 1e6:.2f} MB"
    )


def test_forgets_the_least_recently_seen(impl: ModuleType) -> None:
    """the least recently seen client is forgotten first; a flooder seen recently keeps its empty bucket

    Move a client to the most recent end each time it is seen (od.move_to_end); evict from the
    other end. Evicting by creation order instead would hand the flooder a full bucket.
    """
    lim, _ = limiter(impl, burst=2, clients=3)
    for client in "abc":
        lim.acquire(client)
        lim.acquire(client)
    assert not passes(lim, "a"), "expected a refused (its bucket is empty)"  # a is now the most recent
    lim.acquire("d")  # a 4th client: b is the least recently seen
    assert len(lim) == 3, f"expected 3 buckets with max_clients=3, got {len(lim)}"
    assert not passes(lim, "a"), "expected a, seen just before d came, to keep its empty bucket"
    assert passes(lim, "b"), "expected b, the least recently seen, forgotten: back with a full bucket"
    lim, _ = limiter(impl, burst=2, clients=100)
    lim.acquire("flood")
    lim.acquire("flood")
    through = 0
    for i in range(1_000):  # 1,000 other clients come and go while the flooder keeps asking
        lim.acquire(f"other-{i}")
        through += passes(lim, "flood")
    assert through == 0, f"expected the flooder refused throughout (clock frozen), got {through} through"


# ---------------------------------------------------------------- in the running server
def no_model(_settings: Settings, _alias: str) -> Any:
    raise LoadError("no version of fraud-detector has alias @champion yet")


@contextlib.contextmanager
def server(impl: ModuleType, home: Path, tiny: TinyModel, ready: bool) -> Iterator[str]:
    """The model server with `impl.RateLimiter` (HTTP_RATE a second, burst HTTP_BURST) under
    uvicorn in a thread; its base URL."""
    settings = Settings(
        home=home,
        reload_poll_s=3600,
        retry_after_s=RETRY_AFTER,
        rate_limit_per_s=HTTP_RATE,
        rate_limit_burst=HTTP_BURST,
        rate_limit_max_clients=100,
    )
    loader = (lambda _s, alias: loaded_model(tiny, "1", alias)) if ready else no_model
    holder = ModelHolder(settings, "champion", loader=loader)
    app = create_app(settings, "stable", holder=holder, limiter_class=impl.RateLimiter)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_S
        while not uv.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert uv.started, "expected the model server to start (see the log above)"
        if ready:
            assert holder.wait_ready(START_S), f"expected a model loaded: {holder.not_ready_reason}"
        else:
            while holder.load_failures == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(START_S)


@pytest.fixture(scope="module")
def ready_server(
    impl: ModuleType, tmp_path_factory: pytest.TempPathFactory, tiny_model: TinyModel
) -> Iterator[str]:
    with server(impl, tmp_path_factory.mktemp("lab6-limiter"), tiny_model, ready=True) as base:
        yield base


def post(base: str, client: str | None, rows: int = 0) -> httpx.Response:
    """POST one prediction (rows=0) or a batch of `rows`, as `client` (None: no X-Client-Id)."""
    headers = {"x-client-id": client} if client else {}
    row = {k: v for k, v in EXAMPLE_REQUEST.items() if k != "card_id"}
    if rows:
        return httpx.post(
            f"{base}/v1/predict/batch", json={"rows": [row] * rows}, headers=headers, timeout=30
        )
    return httpx.post(f"{base}/v1/predict", json=row, headers=headers, timeout=30)


def rate_limited(base: str, route: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=30).text
    found = re.search(rf'mlops_rate_limited_total{{route="{re.escape(route)}",variant="stable"}} (\S+)', text)
    return float(found[1]) if found else 0.0


def test_http_429_with_retry_after(impl: ModuleType, ready_server: str) -> None:
    """over its rate, the server answers 429 with Retry-After (whole seconds) and counts it; others get 200

    create_app calls your acquire(client, cost) for every request with a model loaded and turns a
    wait into 429, Retry-After: ceil(wait). Here: 0.05 tokens a second, a burst of 2.
    """
    codes = [post(ready_server, "flood").status_code for _ in range(HTTP_BURST)]
    assert codes == [200] * HTTP_BURST, f"expected the burst ({HTTP_BURST}) answered 200, got {codes}"
    r = post(ready_server, "flood")
    assert r.status_code == 429, f"expected 429 for the request over the burst, got {r.status_code}: {r.text}"
    retry = r.headers.get("retry-after", "")
    # One token every 20 s: 20 right after the burst, 19 after a stall of a second or more.
    assert retry.isdigit() and 10 <= int(retry) <= 20, (
        f"expected Retry-After about 20 (one token at 0.05/s, in whole seconds), got {retry!r}"
    )
    assert "rate limit" in r.json().get("detail", ""), f"expected a detail saying why, got {r.text}"
    assert post(ready_server, "calm").status_code == 200, "expected another client still answered 200"
    counted = rate_limited(ready_server, "/v1/predict")
    assert counted == 1, f'expected mlops_rate_limited_total{{route="/v1/predict"}} 1, got {counted}'
    codes = [
        post(ready_server, "batcher", rows=2).status_code,
        post(ready_server, "batcher", rows=1).status_code,
    ]
    assert codes == [200, 429], f"expected a 2-row batch through and a 1-row batch refused, got {codes}"
    assert rate_limited(ready_server, "/v1/predict/batch") == 1, (
        "expected the batch's 429 counted on its route"
    )


def test_http_peer_address_is_the_client(impl: ModuleType, ready_server: str) -> None:
    """without X-Client-Id a request's client is its address: its own bucket, not a free pass

    The server passes the peer address (127.0.0.1 here) as client_id; your limiter sees it as any
    other client.
    """
    codes = [post(ready_server, None).status_code for _ in range(HTTP_BURST + 1)]
    assert codes == [200] * HTTP_BURST + [429], (
        f"expected {HTTP_BURST} requests without X-Client-Id through and the next refused, got {codes}"
    )
    assert post(ready_server, "named").status_code == 200, "expected a named client still answered 200"


def test_http_not_ready_is_503_not_429(impl: ModuleType, tmp_path: Path, tiny_model: TinyModel) -> None:
    """a server with no model answers 503 with its Retry-After, never 429, however fast a client asks

    The limiter is only asked once a model is loaded: "not ready" is about the server, and a
    request refused for it must not spend the client's tokens.
    """
    with server(impl, tmp_path, tiny_model, ready=False) as base:
        answers = [post(base, "eager") for _ in range(HTTP_BURST + 3)]
        codes = [r.status_code for r in answers]
        assert codes == [503] * len(codes), f"expected only 503 while no model is loaded, got {codes}"
        retry = {r.headers.get("retry-after") for r in answers}
        assert retry == {str(RETRY_AFTER)}, f"expected Retry-After {RETRY_AFTER} (not ready), got {retry}"
        assert rate_limited(base, "/v1/predict") == 0, "expected no request counted as rate limited"
