"""lab4/high-cardinality: a request id becomes a metric label; series explode and the panel breaks.

    make scenario S=lab4/high-cardinality [IMPL=exercises]

Someone adds request_id as a label of the router's metrics, to find a slow request from the
dashboard. Every request then creates its own series: one counter (and its _created) and, for
the latency histogram, a series per bucket plus _count, _sum and _created. The scenario sends the
same traffic to two exporters, both real prometheus_client registries served over HTTP:
  - labelled by request: mlops_router_requests_total{variant, outcome, request_id} and the latency
    histogram {variant, request_id};
  - the fix: the router's own RouterMetrics (bounded labels: variant, outcome), with the request
    id kept as an exemplar (and, in the system, in the prediction log).
Two real Prometheus servers scrape one each. Measured: series per request in each registry,
each Prometheus' head series, and the burn-rate panel of the dashboard-queries part sent to
both: the fixed one shows each variant's burn rate; on the labelled one every series is a
counter that reads 1 from its first sample, so rate() sees no increase and the panel is empty.
With IMPL=exercises the panel queries are yours (exercises/lab4/panels.py).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import yaml
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from mlops_lab.canary.router import RouterMetrics
from mlops_lab.labs.grading import free_port
from mlops_lab.labs.scenarios import Context, ScenarioFailed
from mlops_lab.runtime.supervisor import ProcessSpec
from mlops_lab.serving.metrics import LATENCY_BUCKETS

BATCHES, BATCH = 3, 600  # requests; each batch holds exactly the same mix (see traffic)
CANARY_EVERY, CANARY_ERROR_EVERY, STABLE_ERROR_EVERY = 10, 20, 270
SCRAPE_S = 3  # the labelled exporter serves tens of thousands of lines a scrape
DEADLINE_S = 90.0


def run(ctx: Context) -> None:
    panels = ctx.module("dashboard-queries")
    binary = shutil.which("prometheus")
    if binary is None:
        raise ScenarioFailed("prometheus is needed (make setup installs it: apt-get install prometheus)")
    (labelled, labelled_requests, labelled_latency), fixed = by_request_registry(), RouterMetrics()
    servers = []
    try:
        specs, apis = [], {}
        for name, registry in (("labelled", labelled), ("fixed", fixed.registry)):
            port = free_port()
            servers.append(start_http_server(port, addr="127.0.0.1", registry=registry)[0])
            spec = prometheus_spec(ctx.settings.home / f"prometheus-{name}", binary, name, port)
            specs.append(spec)
            apis[name] = f"http://127.0.0.1:{spec.port}"
        ctx.supervisor.start_all(specs)
        ctx.info(
            f"setup: two exporters of the router's metrics and two Prometheus servers scraping one each, "
            f"every {SCRAPE_S} s: {apis['labelled']} (labelled by request) and {apis['fixed']} (the fix)"
        )
        for name, api in apis.items():
            ctx.until(scraped(api), f"{name}: Prometheus scrapes its exporter", DEADLINE_S)

        ctx.inject("request_id becomes a label of mlops_router_requests_total and the latency histogram")
        sent: dict[tuple[str, str], int] = {}
        rng = np.random.default_rng(7)
        grew = []
        for batch in range(BATCHES):
            for variant, outcome, request_id, latency in traffic(batch, rng):
                labelled_requests.labels(variant, outcome, request_id).inc()
                labelled_latency.labels(variant, request_id).observe(latency)
                # The fix: bounded labels; the id rides along as an exemplar of the sample.
                fixed.requests.labels(variant, outcome).inc(exemplar={"request_id": request_id})
                fixed.upstream_latency.labels(variant).observe(latency, exemplar={"request_id": request_id})
                sent[variant, outcome] = sent.get((variant, outcome), 0) + 1
            n = (batch + 1) * BATCH
            grew.append((n, series_in(labelled), series_in(fixed.registry)))
            time.sleep(2 * SCRAPE_S + 0.5)  # let both servers scrape this batch
        for n, bad, good in grew:
            ctx.info(f"after {n:,} requests: {bad:,} series labelled by request, {good} with bounded labels")
        n, bad, good = grew[-1]
        ctx.symptom(
            f"{bad / n:.1f} series per request labelled by request: {bad:,} for {n:,} requests, and growing "
            f"with traffic; the fix holds {good} whatever the traffic"
        )
        heads = {name: head_series(api) for name, api in apis.items()}
        ctx.signal(
            f"prometheus_tsdb_head_series: {heads['labelled']:,.0f} labelled by request, "
            f"{heads['fixed']:,.0f} fixed"
        )
        for name, api in apis.items():
            last = {
                m: query(api, f'{m}{{job="router"}}')
                for m in ("up", "scrape_samples_scraped", "scrape_duration_seconds")
            }
            ctx.signal(
                f"{name}: last scrape up {fmt(last['up'])}, {fmt(last['scrape_samples_scraped'], ',.0f')} "
                f"samples in {fmt(last['scrape_duration_seconds'], '.3f')} s"
            )
        ctx.check(
            grew[-1][1] - grew[0][1] >= 10 * (grew[-1][0] - grew[0][0]),
            "labelled by request, the registry grows by over 10 series per request",
        )
        ctx.check(len({g for _, _, g in grew}) == 1, f"with bounded labels it stays at {good} series")
        ctx.check(
            heads["labelled"] >= 10 * heads["fixed"],
            f"the labelled Prometheus holds over 10x the head series ({heads['labelled']:,.0f} vs "
            f"{heads['fixed']:,.0f})",
        )

        # ---- the panel on-call opens first, on both
        expr = panels.burn_rate()
        expected = {v: burn(sent, v) for v in ("stable", "canary")}
        shown = {name: by_variant(api, expr) for name, api in apis.items()}
        ctx.signal(
            "burn-rate panel (the dashboard-queries part): fixed "
            + ", ".join(f"{v} {x:.2f}" for v, x in sorted(shown["fixed"].items()))
            + "; labelled by request "
            + (", ".join(f"{v} {x}" for v, x in sorted(shown["labelled"].items())) or "no series")
            + "; sent: "
            + ", ".join(f"{v} {x:.2f}" for v, x in sorted(expected.items()))
        )
        ctx.check(
            all(abs(shown["fixed"].get(v, np.nan) - x) <= 0.1 * x for v, x in expected.items()),
            "with bounded labels the panel shows each variant's burn rate (within 10% of what was sent)",
        )
        ctx.check(
            not any(np.isfinite(x) and x > 0 for x in shown["labelled"].values()),
            "labelled by request, the panel shows nothing: each series reads 1 from its first sample, so "
            "rate() sees no increase",
        )
        for title in panels.PANELS:
            accepted = all(valid(api, panels.PANELS[title]) for api in apis.values())
            ctx.check(accepted, f"Prometheus accepts the panel query {title!r}")

        found = exemplars(apis["fixed"], "mlops_router_upstream_latency_seconds_bucket")
        sample = sorted(found)[:3]
        ctx.signal(
            f"exemplars on the fixed latency histogram: {len(found)} request ids (e.g. {', '.join(sample)}): "
            "from a spike on the panel to a request, without a series per request"
        )
        ctx.check(bool(found), "the request id is still reachable, as an exemplar")
        ctx.mitigate(
            "drop the unbounded label (bounded labels only: variant, outcome, route template); put "
            "request_id and card_id in the prediction log and in exemplars; guard each scrape job with a "
            "sample_limit"
        )
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def by_request_registry() -> tuple[CollectorRegistry, Counter, Histogram]:
    """The router's two request metrics with request_id added to their labels (the mistake)."""
    r = CollectorRegistry()
    requests = Counter(
        "mlops_router_requests_total",
        "Prediction requests per variant that handled them (labelled by request: the mistake)",
        ["variant", "outcome", "request_id"],
        registry=r,
    )
    latency = Histogram(
        "mlops_router_upstream_latency_seconds",
        "Time the upstream model server took (labelled by request: the mistake)",
        ["variant", "request_id"],
        buckets=LATENCY_BUCKETS,
        registry=r,
    )
    return r, requests, latency


def traffic(batch: int, rng: np.random.Generator) -> Iterator[tuple[str, str, str, float]]:
    """Batch `batch` of requests: (variant, outcome, request_id, upstream latency in seconds).
    Every batch holds the same mix: 10% canary with 5% errors, stable with 1 error in 270."""
    for i in range(batch * BATCH, (batch + 1) * BATCH):
        if i % CANARY_EVERY == 0:
            variant, failed = "canary", (i // CANARY_EVERY) % CANARY_ERROR_EVERY == 0
        else:
            variant, failed = "stable", (i - i // CANARY_EVERY - 1) % STABLE_ERROR_EVERY == 0
        request_id = f"{int(rng.integers(2**63)):016x}"
        yield variant, "error" if failed else "ok", request_id, float(rng.lognormal(np.log(0.004), 0.5))


def burn(sent: dict[tuple[str, str], int], variant: str, budget: float = 0.001) -> float:
    """The burn rate of what was sent: error ratio / error budget (the availability SLO's 0.1%)."""
    total = sum(n for (v, _), n in sent.items() if v == variant)
    return sent.get((variant, "error"), 0) / total / budget


def series_in(registry: CollectorRegistry) -> int:
    """Series a scrape of `registry` returns (every sample line: buckets, _sum, _count, _created)."""
    return sum(len(family.samples) for family in registry.collect())


def prometheus_spec(home: Path, binary: str, name: str, target: int) -> ProcessSpec:
    """A Prometheus scraping the exporter on `target` as job "router", every SCRAPE_S seconds."""
    home.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": f"{SCRAPE_S}s", "scrape_timeout": f"{SCRAPE_S}s"},
        "scrape_configs": [{"job_name": "router", "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}],
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    argv = [
        binary,
        f"--config.file={home / 'prometheus.yml'}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--enable-feature=exemplar-storage",  # exemplars are kept only with this flag (2.x)
    ]
    return ProcessSpec(f"prometheus-{name}", argv, f"http://127.0.0.1:{port}/-/ready", port)


def fmt(values: list[float], spec: str = "g") -> str:
    return format(values[0], spec) if values else "none"


def scraped(api: str) -> Callable[[], bool]:
    return lambda: query(api, 'up{job="router"}') == [1.0]


def query(api: str, promql: str) -> list[float]:
    """The values of an instant query (an empty list: no series)."""
    r = httpx.get(f"{api}/api/v1/query", params={"query": promql}, timeout=10)
    r.raise_for_status()
    return [float(item["value"][1]) for item in r.json()["data"]["result"]]


def by_variant(api: str, promql: str) -> dict[str, float]:
    r = httpx.get(f"{api}/api/v1/query", params={"query": promql}, timeout=10)
    r.raise_for_status()
    return {
        item["metric"].get("variant", "?"): float(item["value"][1]) for item in r.json()["data"]["result"]
    }


def valid(api: str, promql: str) -> bool:
    """Prometheus parses and evaluates `promql` (an empty result is fine: no such metric here)."""
    r = httpx.get(f"{api}/api/v1/query", params={"query": promql}, timeout=10)
    return r.status_code == 200 and r.json().get("status") == "success"


def head_series(api: str) -> float:
    """prometheus_tsdb_head_series from the server's own /metrics (not scraped into its TSDB, so
    the count holds the router's series and the scrape's own up/scrape_* ones only)."""
    for line in httpx.get(f"{api}/metrics", timeout=10).text.splitlines():
        if line.startswith("prometheus_tsdb_head_series "):
            return float(line.split()[1])
    raise ScenarioFailed(f"{api}/metrics has no prometheus_tsdb_head_series")


def exemplars(api: str, metric: str) -> set[str]:
    """The request ids of the exemplars Prometheus stored for `metric` over the last 10 minutes."""
    now = time.time()
    r = httpx.get(
        f"{api}/api/v1/query_exemplars", params={"query": metric, "start": now - 600, "end": now}, timeout=10
    )
    r.raise_for_status()
    return {
        e["labels"]["request_id"]
        for group in r.json()["data"]
        for e in group["exemplars"]
        if "request_id" in e["labels"]
    }
