"""What one Prometheus scrape costs, for each target: GET /metrics over HTTP on 127.0.0.1, medians.

    .venv/bin/python bench/metrics_bench.py --home data        # a home with a champion (`mlops demo`)

1. the prediction service (`mlops serve --online-store redis`, as bench/serving_bench.py starts it), after
   `--requests` one-flight requests so its histograms hold data;
2. the exporter `mlops metrics` over the home's Dagster instance, lake and registry: a cached scrape
   (the default --max-age 30: what nearly every scrape is) and an uncached one (--max-age 0: every scrape
   reads the instance, the lake and the registry again, as one scrape in --max-age does).
Each: `--scrapes` GETs one after another on one keep-alive connection; median, p90 and the body's size.
3. the CPU time the metrics add to one request (the middleware and the scoring path's observes, in
   process, without network or model), against the same trivial app without them.
The machine's load average is printed beside (2 shared cores: the figures move with it).
Writes bench/results/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))

from bench.serving_bench import (  # noqa: E402
    Service,
    ensure_redis,
    feature_window,
    free_port,
    log,
    sample_flights,
)


def time_scrapes(url: str, scrapes: int) -> dict:
    import httpx

    seconds, size = [], 0
    with httpx.Client(base_url=url, timeout=120) as http:
        http.get("/metrics")  # connection and first render not counted
        for _ in range(scrapes):
            started = time.perf_counter()
            response = http.get("/metrics")
            seconds.append(time.perf_counter() - started)
            assert response.status_code == 200, response.status_code
            size = len(response.content)
    ordered = sorted(seconds)
    return {
        "median_ms": statistics.median(seconds) * 1000,
        "p90_ms": ordered[int(0.9 * (len(ordered) - 1))] * 1000,
        "scrapes": scrapes,
        "bytes": size,
    }


def hot_path_cost(requests: int = 20_000, repeats: int = 7) -> dict:
    """CPU time the metrics add to one request, without the network or the model: the `Instrumented`
    middleware around a trivial ASGI app that answers 200, plus the scoring path's observes (two stages
    and one probability), against the bare app. Medians of `repeats` loops of `requests` calls."""
    import asyncio

    from mlops_assets.serving.metrics import Instrumented, ServiceMetrics

    metrics = ServiceMetrics()
    start = {"type": "http.response.start", "status": 200, "headers": []}
    body = {"type": "http.response.body", "body": b"{}"}

    async def app(scope, receive, send) -> None:
        await send(start)
        await send(body)

    async def scored(scope, receive, send) -> None:  # what PredictionService.score adds
        metrics.online_read.observe(0.0004)
        metrics.model.observe(0.0002)
        metrics.observe_probabilities((0.3,))
        await app(scope, receive, send)

    async def sink(message) -> None:
        return None

    scope = {"type": "http", "path": "/predict", "method": "POST"}

    async def loop(target) -> float:
        started = time.perf_counter()
        for _ in range(requests):
            await target(scope, None, sink)
        return (time.perf_counter() - started) / requests

    def median_us(target) -> float:
        return statistics.median(asyncio.run(loop(target)) for _ in range(repeats)) * 1e6

    bare = median_us(app)
    instrumented = median_us(Instrumented(scored, metrics))
    return {"bare_us": bare, "with_metrics_us": instrumented, "added_us": instrumented - bare}


def exporter(home: Path, port: int, max_age: float) -> subprocess.Popen:
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "DAGSTER_HOME": os.environ.get("DAGSTER_HOME", str(home / "dagster_home")),
        "MLOPS_PROFILE": "local",
        "PYTHONPATH": str(REPO),
    }
    command = [
        sys.executable,
        "-m",
        "mlops_assets.cli",
        "metrics",
        "--port",
        str(port),
        "--max-age",
        str(max_age),
    ]
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"metrics-bench-exporter-{port}.log"
    output = open(log_path, "w")  # noqa: SIM115 (the child keeps it)
    return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=REPO)


def wait_answering(url: str, process: subprocess.Popen, timeout_s: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/metrics", timeout=60).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} did not answer in {timeout_s} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("MLOPS_HOME", "data")))
    parser.add_argument("--scrapes", type=int, default=200, help="scrapes timed per target")
    parser.add_argument("--uncached-scrapes", type=int, default=20, help="scrapes timed with --max-age 0")
    parser.add_argument("--requests", type=int, default=500, help="one-flight requests before the scrapes")
    args = parser.parse_args()
    home = args.home.resolve()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    load_before = os.getloadavg()
    results: dict = {"home": str(home), "load_average_before": load_before}

    results["hot_path"] = hot_path_cost()
    log(f"hot path: metrics add {results['hot_path']['added_us']:.1f} us of CPU per request")
    window = feature_window(home)
    bodies = sample_flights(home, window, args.requests)
    ensure_redis(home, window, bodies[0], force=False)
    service = Service(home, free_port(), Path(os.environ.get("TMPDIR", "/tmp")) / "metrics-bench-serve.log")
    try:
        service.wait_healthy()
        import httpx

        with httpx.Client(base_url=service.url, timeout=30) as http:
            answered = sum(http.post("/predict", json=body).status_code == 200 for body in bodies)
        log(f"service: {answered} of {len(bodies)} requests answered 200; timing {args.scrapes} scrapes")
        results["service"] = time_scrapes(service.url, args.scrapes)
    finally:
        service.stop()

    for name, max_age, scrapes in (
        ("exporter_cached", 30.0, args.scrapes),
        ("exporter_uncached", 0.0, args.uncached_scrapes),
    ):
        port = free_port()
        process = exporter(home, port, max_age)
        try:
            wait_answering(f"http://127.0.0.1:{port}", process)
            log(f"{name}: timing {scrapes} scrapes")
            results[name] = time_scrapes(f"http://127.0.0.1:{port}", scrapes)
        finally:
            process.terminate()
            process.wait(timeout=30)

    results["load_average_after"] = os.getloadavg()
    print(
        f"\none scrape of GET /metrics (load average {load_before[0]:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after)"
    )
    print(f"{'target':<22}{'median ms':>11}{'p90 ms':>9}{'bytes':>9}{'scrapes':>9}")
    for name in ("service", "exporter_cached", "exporter_uncached"):
        row = results[name]
        print(f"{name:<22}{row['median_ms']:>11.2f}{row['p90_ms']:>9.2f}{row['bytes']:>9}{row['scrapes']:>9}")
    out = BENCH_DIR / "results" / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
