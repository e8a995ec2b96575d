"""Online prediction, end to end over HTTP on 127.0.0.1, with Redis as the Feast online store.

    .venv/bin/python bench/serving_bench.py --home /tmp/serving_home            # the full run (up to ~20 min)
    .venv/bin/python bench/serving_bench.py --home /tmp/serving_home --smoke    # every phase, 5 s each
    .venv/bin/python bench/serving_bench.py --home /tmp/serving_home --profile  # cProfile of the request path
    .venv/bin/python bench/serving_bench.py --home /tmp/serving_home --stages   # each stage's median time
    .venv/bin/python bench/serving_bench.py --home /tmp/serving_home --compare "--switch-interval 0.005;"
                                                      # variants of `mlops serve` options, side by side
    .venv/bin/python bench/serving_bench.py --home /tmp/serving_home --compare ";--no-metrics"
                                                      # what /metrics costs (scraped every --scrape-s)

The home needs a champion in its MLflow registry and its features in the lake (`mlops demo` makes one).
1. Redis: the home's feature window is materialized into the Redis online store (skipped when a probe
   flight is already there; `--materialize` forces it).
2. The service: `mlops serve --online-store redis` in a child process on 127.0.0.1 (the real command,
   uvicorn, prediction log on); waits for /health.
3. Open-loop load at a fixed rate (asyncio, one request launched every 1/rate s whatever the
   previous ones are doing, so a slow server cannot slow the load down and hide its own latency).
   Latency is measured from the moment a request was due to the end of its response. The client is a
   lean keep-alive HTTP/1.1 client on asyncio streams (`--client httpx` for httpx): on 2 shared cores a
   heavier client would take the service's CPU. The service's own CPU time per request is reported too.
   - steady: one-flight requests at `--rate` (100/s) for `--steady-s` (60 s), `--repeats` times;
     a batch of `--batch` (100) flights at `--batch-rate` (10/s) the same way; p50, p99, max, errors.
   - ramp: one-flight requests at each rate of `--ramp`, each held `--hold-s` (60 s): the highest rate
     with no error (every request 200, none over `--timeout-s`) and its p99. The same for batches.
Flights are real flights of the window (fct_flights of the home's warehouse), in random order.
Prints the tables (medians of the repeats side by side) and writes bench/results/serving.json.
Goals: p99 under 5 ms for one flight at 100 requests/s (and within 1.5x of the floor's in a `--compare
"floor;"` run), under 15 ms for a batch of 100 at 10 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))
RESULTS_FILE = BENCH_DIR / "results" / "serving.json"
FLOOR = "floor"  # a --compare variant: bench/floor_app.py instead of `mlops serve`
GOAL_SINGLE_P99_MS = 5.0  # one flight at --rate
GOAL_BATCH_P99_MS = 15.0  # a batch of --batch flights at --batch-rate
IDLE_REUSE_S = 3.0  # keep-alive connections idle longer than this are closed, not reused


def log(message: str) -> None:
    print(f"[serving-bench] {message}", flush=True)


# ---- the data ------------------------------------------------------------------------------------------


def feature_window(home: Path) -> tuple[str, str]:
    """First and last day of the home's training window (the days the demo materialized)."""
    pointer = json.loads((home / "lake" / "features" / "training_set" / "latest.json").read_text())
    return pointer["window"][0], pointer["window"][1]


def sample_flights(home: Path, window: tuple[str, str], count: int, seed: int = 0) -> list[dict]:
    """Real flights of the window as request bodies: the New York departure with its UTC offset, so the
    repeated hour of the autumn DST change is not ambiguous (the service refuses a bare wall clock there)."""
    import duckdb
    import pandas as pd

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        frame = con.execute(
            """
            select carrier, flight_number, origin, dest, sched_dep_utc from marts.fct_flights
            where flight_date between cast(? as date) and cast(? as date)
            """,
            list(window),
        ).df()
    frame = frame.sample(min(count, len(frame)), random_state=seed)
    return [
        {
            "carrier": row.carrier,
            "flight_number": int(row.flight_number),
            "origin": row.origin,
            "dest": row.dest,
            "scheduled_departure": _new_york(pd.Timestamp(row.sched_dep_utc)).isoformat(),
        }
        for row in frame.itertuples()
    ]


def _new_york(instant):
    return (instant.tz_localize("UTC") if instant.tzinfo is None else instant).tz_convert("America/New_York")


def redis_feast(home: Path):
    from mlops_assets.lib.settings import Settings
    from mlops_assets.resources.feature_store import feast_resource

    return feast_resource(Settings(profile="local", home=home), online_store="redis")


def ensure_redis(home: Path, window: tuple[str, str], probe: dict, force: bool) -> None:
    """Materialize the window into Redis, as the features/online_store asset does for its partitions."""
    import datetime as dt

    from mlops_assets.features.online import MATERIALIZE_LOOKBACK, local_days_utc_span
    from mlops_assets.serving.flights import FlightRequest

    feast = redis_feast(home)
    row = FlightRequest.model_validate(probe).entity_row()
    present = feast.online_features([row], "flight_delay_v1")["flight_schedule__distance"][0] is not None
    if present and not force:
        log("Redis already holds the window (probe flight found); --materialize to redo it")
        return
    start, end = local_days_utc_span(*window)
    log(f"materializing {window[0]}..{window[1]} into Redis (project {feast.project}) ...")
    seconds = feast.materialize(start - MATERIALIZE_LOOKBACK, end - dt.timedelta(microseconds=1))["seconds"]
    log(f"materialized in {seconds:.1f} s")


# ---- the service ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """`mlops serve --online-store redis` in a child process."""

    def __init__(self, home: Path, port: int, log_path: Path, workers: int = 1, extra: str = "") -> None:
        env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_PROFILE": "local"}
        checkout = REPO
        if extra.startswith("@"):  # "@<dir> [options]": `mlops serve` of another checkout (a git worktree)
            where, _, extra = extra[1:].partition(" ")
            checkout = Path(where).resolve()
            env["PYTHONPATH"] = str(checkout)  # ahead of this checkout's editable install
        command = [sys.executable, "-m", "mlops_assets.cli", "serve", "--port", str(port)]
        command += ["--online-store", "redis", "--workers", str(workers), *shlex.split(extra)]
        if extra == FLOOR:  # the same HTTP stack answering a constant (bench/floor_app.py)
            command = [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--port", str(port)]
            command += ["--no-access-log", "--log-level", "warning"]
        self.url = f"http://127.0.0.1:{port}"
        self._log = open(log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=checkout
        )

    def wait_healthy(self, timeout_s: float = 240) -> dict:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited with {self.process.returncode}; see {self._log.name}")
            try:
                response = httpx.get(f"{self.url}/health", timeout=2)
                if response.status_code == 200:
                    return response.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the service was not healthy within {timeout_s} s; see {self._log.name}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown: the log is flushed
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


# ---- open-loop load ------------------------------------------------------------------------------------


class RawHttp:
    """A lean HTTP/1.1 keep-alive client on asyncio streams (the default load generator).

    The load generator shares these 2 cores with the service; httpx spends about as much CPU per request
    as the service does, which would measure the client. Like wrk, this one only writes pre-encoded
    requests and reads status, headers and a Content-Length body; connections are reused."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    @staticmethod
    def encode(host: str, path: str, body: dict) -> bytes:
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode() + payload

    async def post(self, request: bytes) -> tuple[int, bytes]:
        reader = writer = None
        while self._idle:
            reader, writer, used = self._idle.pop()
            # uvicorn closes a connection idle for 5 s (timeout_keep_alive): never reuse one near that
            if time.monotonic() - used < IDLE_REUSE_S and not reader.at_eof():
                break
            writer.close()
            reader = writer = None
        if writer is None:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(request)
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionError("the server closed the connection without answering")
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        self._idle.append((reader, writer, time.monotonic()))
        return int(status_line.split()[1]), body

    async def close(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()


async def open_loop(url: str, path: str, bodies: list[dict], rate: float, seconds: float, args):
    """Launch rate*seconds requests, one every 1/rate s; returns (latencies ms, errors, wall s)."""
    latencies: list[float] = []
    errors: list[str] = []
    if args.client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        client = httpx.AsyncClient(base_url=url, timeout=args.timeout_s, limits=limits)

        async def send(body: dict) -> tuple[int, bytes]:
            response = await client.post(path, json=body)
            return response.status_code, response.content

        requests = bodies
    else:
        client = RawHttp(url)
        requests = [RawHttp.encode(client.host, path, body) for body in bodies]
        send = client.post

    async def one(request, due: float) -> None:
        try:
            status, body = await asyncio.wait_for(send(request), args.timeout_s)
            if status != 200:
                errors.append(f"{status}: {body[:200]!r}")
                return
        except Exception as error:  # timeouts and connection errors count as errors
            errors.append(f"{type(error).__name__}: {error}")
            return
        latencies.append((time.perf_counter() - due) * 1000)

    # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(requests[i % len(requests)], due)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    await (client.aclose() if args.client == "httpx" else client.close())
    return latencies, errors, wall


def run_loop(coroutine):
    """uvloop when installed (uvicorn's own choice for the service), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def summarize(latencies: list[float], errors: list[str], wall: float, rate: float, seconds: float) -> dict:
    ordered = sorted(latencies)

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    return {
        "rate": rate,
        "seconds": seconds,
        "requests": int(rate * seconds),
        "ok": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "p50_ms": quantile(0.50),
        "p99_ms": quantile(0.99),
        "max_ms": ordered[-1] if ordered else float("nan"),
        "achieved_rps": len(latencies) / wall if wall else 0.0,
    }


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds so far of a process and its children (Linux /proc): with
    `--workers`, the worker processes do the serving."""

    def own(process: int) -> float:
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own(pid) + sum(own(int(child)) for child in children)


def phase(url: str, path: str, bodies: list[dict], rate: float, seconds: float, args) -> dict:
    cpu_before = process_cpu_s(args.service_pid)
    # The load generator's own garbage collection must not pass for the service's latency: a full
    # collection of this process (pandas, duckdb and httpx loaded) stalls every request due meanwhile.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        latencies, errors, wall = run_loop(open_loop(url, path, bodies, rate, seconds, args))
    finally:
        gc.enable()
        gc.unfreeze()
    result = summarize(latencies, errors, wall, rate, seconds)
    # The service's own CPU per request: what the machine's other load cannot inflate much.
    result["service_cpu_ms"] = (process_cpu_s(args.service_pid) - cpu_before) * 1000 / max(1, result["ok"])
    log(
        f"{path:<15} {rate:>6.0f}/s x {seconds:>3.0f}s: p50 {result['p50_ms']:7.2f} ms  "
        f"p99 {result['p99_ms']:7.2f} ms  max {result['max_ms']:8.2f} ms  errors {result['errors']}  "
        f"service CPU {result['service_cpu_ms']:.2f} ms/request  (load average {os.getloadavg()[0]:.2f})"
    )
    return result


def steady(url: str, path: str, bodies: list[dict], rate: float, args) -> dict:
    runs = [phase(url, path, bodies, rate, args.steady_s, args) for _ in range(args.repeats)]
    return {
        "runs": runs,
        "median_p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "median_p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "median_max_ms": statistics.median(r["max_ms"] for r in runs),
        "median_service_cpu_ms": statistics.median(r["service_cpu_ms"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
    }


def settle(url: str, limit_s: float = 120.0) -> None:
    """Waits until the service answers /health quickly three times in a row: an overloaded phase leaves
    queued requests behind, which must not count against the next phase."""
    import urllib.request

    fast, deadline = 0, time.monotonic() + limit_s
    while fast < 3 and time.monotonic() < deadline:
        started = time.perf_counter()
        with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
            response.read()
        fast = fast + 1 if time.perf_counter() - started < 0.02 else 0
        time.sleep(0.5)


def ramp(url: str, path: str, bodies: list[dict], rates: list[float], args) -> dict:
    """Each rate held for hold_s; the highest that finished with no error; stops at the first failure."""
    held, steps = None, []
    for rate in rates:
        settle(url)
        result = phase(url, path, bodies, rate, args.hold_s, args)
        steps.append(result)
        if result["errors"] or result["achieved_rps"] < 0.97 * rate:
            break
        held = result
    return {
        "steps": steps,
        "highest_rate": held["rate"] if held else None,
        "p99_ms_at_highest": held and held["p99_ms"],
    }


def compare(home: Path, bodies: list[dict], variants: list[str], args) -> dict:
    """One-flight steady load on one service per variant of `mlops serve` options, all started at once and
    measured in turns (repeat 1 of each, then repeat 2 of each, ...), so that the machine's drifting
    background load falls on every variant alike. Prints their medians side by side."""
    services = [
        Service(home, free_port(), Path(os.environ.get("TMPDIR", "/tmp")) / f"serving-bench-{i}.log",
                args.workers, variant)
        for i, variant in enumerate(variants)
    ]  # fmt: skip
    runs: dict[str, list[dict]] = {variant: [] for variant in variants}
    try:
        for service in services:
            service.wait_healthy()
            args.service_pid = service.process.pid
            phase(service.url, "/predict", bodies, 50, 5, args)  # warm-up, not reported
        for _ in range(args.repeats):
            for variant, service in zip(variants, services, strict=True):
                args.service_pid = service.process.pid
                # A variant that serves /metrics is scraped as Prometheus would, while it is measured.
                scraping = Scraper(service.url, args.scrape_s if "--no-metrics" not in variant else 0)
                with scraping:
                    result = phase(service.url, "/predict", bodies, args.rate, args.steady_s, args)
                runs[variant].append({**result, "scrapes": scraping.scrapes})
    finally:
        for service in services:
            service.stop()
    print(f"\none flight at {args.rate:.0f}/s, medians of {args.repeats} turns of {args.steady_s:.0f} s each")
    print(f"{'mlops serve options':<36}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}{'CPU ms':>8}")
    table = {}
    for variant, results in runs.items():
        row = {
            key: statistics.median(r[key] for r in results)
            for key in ("p50_ms", "p99_ms", "max_ms", "service_cpu_ms")
        }
        row["errors"] = sum(r["errors"] for r in results)
        table[variant or "(defaults)"] = {**row, "runs": results}
        print(
            f"{variant or '(defaults)':<36}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}{row['max_ms']:>9.2f}"
            f"{row['errors']:>8}{row['service_cpu_ms']:>8.2f}"
        )
    first, *others = table
    for other in others:
        ratio = table[other]["p99_ms"] / table[first]["p99_ms"]
        print(f"p99 of {other} / {first}: {ratio:.2f}")
    return table


class Scraper:
    """GET /metrics every `every_s` seconds while a phase runs (0: not at all), from a process of its own
    (curl), as Prometheus scrapes: a thread of this process would take the load generator's GIL and show
    as the service's latency."""

    def __init__(self, url: str, every_s: float) -> None:
        self.url, self.every_s, self.scrapes = url, every_s, 0
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> Scraper:
        if self.every_s > 0:
            scrape = f'curl -sf -o /dev/null "{self.url}/metrics" && echo ok'
            loop = f"while sleep {self.every_s:g}; do {scrape}; done"
            self._process = subprocess.Popen(["sh", "-c", loop], stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc) -> None:
        if self._process is not None:
            self._process.terminate()
            output, _ = self._process.communicate(timeout=30)
            self.scrapes = output.count("ok")


# ---- profile -------------------------------------------------------------------------------------------


def profile(home: Path, bodies: list[dict], requests: int) -> None:
    """cProfile of `requests` one-flight POSTs through the whole app in-process (TestClient, Redis)."""
    import cProfile
    import pstats

    import torch
    from fastapi.testclient import TestClient

    from mlops_assets.lib.settings import Settings
    from mlops_assets.serving.app import create_app_from_settings

    torch.set_num_threads(1)
    app = create_app_from_settings(Settings(profile="local", home=home), "redis")
    with TestClient(app) as client:
        for body in bodies[:200]:
            client.post("/predict", json=body)
        service = app.state.service
        from mlops_assets.serving.flights import FlightRequest

        flights = [FlightRequest.model_validate(b) for b in bodies[:requests]]
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for flight in flights:
            service.score([flight], batch=False)
        profiler.disable()
        per_request = (time.perf_counter() - started) / len(flights) * 1000
    log(f"service.score of one flight (features + model + log, no HTTP): {per_request:.3f} ms on average")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


def stages(home: Path, bodies: list[dict], requests: int, repeats: int = 5) -> dict:
    """Median time of each stage of one request, in-process and without a profiler, side by side with
    Feast's own `get_online_features` (what the reader replaced): one flight and a batch of 100."""
    import statistics as stats

    import torch

    from mlops_assets.lib.settings import Settings
    from mlops_assets.serving.app import ServiceConfig, create_app_from_settings
    from mlops_assets.serving.features import serving_store
    from mlops_assets.serving.flights import FlightRequest

    torch.set_num_threads(1)
    app = create_app_from_settings(Settings(profile="local", home=home), "redis", ServiceConfig())
    service = app.state.service
    service.start()
    try:
        champion, reader = service.holder.current, service.reader
        name = champion.feature_service
        # the reference: what the service did before FeatureReader (one store kept, the service looked up
        # once, get_online_features(...).to_dict() per request)
        feast_store = serving_store(redis_feast(home))
        feature_service = feast_store.get_feature_service(name)

        def feast_read(entity_rows: list[dict]) -> dict:
            return feast_store.get_online_features(
                features=feature_service, entity_rows=entity_rows, full_feature_names=True
            ).to_dict()

        flights = [FlightRequest.model_validate(b) for b in bodies[:requests]]
        rows = [f.entity_row() for f in flights]
        online = [reader.read([row], name) for row in rows]
        inputs = [champion.inputs.transform(columns) for columns in online]
        batch_rows = [rows[i : i + 100] for i in range(0, len(rows) - 99, 100)]
        cases = {  # label: (call, the items it is called with, one at a time)
            "request body -> FlightRequest": (FlightRequest.model_validate, bodies[:requests]),
            "Feast get_online_features, 1 flight": (lambda r: feast_read([r]), rows),
            "FeatureReader.read, 1 flight": (lambda r: reader.read([r], name), rows),
            "Feast get_online_features, 100 flights": (feast_read, batch_rows),
            "FeatureReader.read, 100 flights": (lambda b: reader.read(b, name), batch_rows),
            "ModelInputs.transform, 1 flight": (champion.inputs.transform, online),
            "model forward, 1 flight": (lambda x: champion.predict_arrays(*x), inputs),
            "PredictionService.score, 1 flight": (lambda f: service.score([f], batch=False), flights),
        }
        figures = {}
        for label, (call, items) in cases.items():
            runs = []
            for _ in range(repeats):
                started = time.perf_counter()
                for item in items:
                    call(item)
                runs.append((time.perf_counter() - started) / len(items) * 1000)
            figures[label] = stats.median(runs)
    finally:
        service.stop()
    print(f"\nstages of a request, in-process, median of {repeats} passes over {requests} flights")
    for label, ms in figures.items():
        print(f"{label:<42}{ms:>9.3f} ms")
    for size in ("1 flight", "100 flights"):
        ratio = figures[f"FeatureReader.read, {size}"] / figures[f"Feast get_online_features, {size}"]
        print(f"FeatureReader / Feast, {size}: {ratio:.2f}")
    return figures


# ---- main ----------------------------------------------------------------------------------------------


def print_tables(results: dict) -> None:
    single, batch = results["steady_single"], results["steady_batch"]
    print(f"\nsteady load, medians of {len(single['runs'])} run(s) of {single['runs'][0]['seconds']:.0f} s")
    print(f"{'request':<22}{'rate/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}{'CPU ms':>8}")
    for name, entry in (("one flight", single), (f"batch of {results['batch_size']}", batch)):
        rate = entry["runs"][0]["rate"]
        print(
            f"{name:<22}{rate:>8.0f}{entry['median_p50_ms']:>9.2f}{entry['median_p99_ms']:>9.2f}"
            f"{entry['median_max_ms']:>9.2f}{entry['errors']:>8}{entry['median_service_cpu_ms']:>8.2f}"
        )
    print("(CPU ms: the service process's CPU time per request)")
    print("\nramp: each rate held, the highest with no error")
    print(f"{'request':<22}{'rate/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'achieved/s':>12}")
    for name, entry in (
        ("one flight", results["ramp_single"]),
        (f"batch of {results['batch_size']}", results["ramp_batch"]),
    ):
        for step in entry["steps"]:
            print(
                f"{name:<22}{step['rate']:>8.0f}{step['p50_ms']:>9.2f}{step['p99_ms']:>9.2f}{step['errors']:>8}"
                f"{step['achieved_rps']:>12.1f}"
            )
        hold = entry["steps"][0]["seconds"]
        print(f"{'':<22}highest rate held for {hold:.0f} s with no error: {entry['highest_rate']}")
    print()
    for name, entry, goal_ms in (
        ("one flight", single, GOAL_SINGLE_P99_MS),
        (f"a batch of {results['batch_size']}", batch, GOAL_BATCH_P99_MS),
    ):
        verdict = "met" if entry["median_p99_ms"] < goal_ms else "NOT met"
        print(f"goal p99 < {goal_ms:.0f} ms for {name} at {entry['runs'][0]['rate']:.0f}/s: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("MLOPS_HOME", "data")))
    parser.add_argument("--rate", type=float, default=100.0, help="one-flight requests/s of the steady phase")
    parser.add_argument("--steady-s", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100, help="flights per batch request")
    parser.add_argument("--batch-rate", type=float, default=10.0, help="batch requests/s of the steady phase")
    parser.add_argument("--ramp", default="100,125,150,200,250,300,400", help="one-flight rates to hold")
    parser.add_argument("--ramp-batch", default="5,10,15,20,30", help="batch rates to hold")
    parser.add_argument("--hold-s", type=float, default=60.0, help="how long each ramp rate is held")
    parser.add_argument("--timeout-s", type=float, default=2.0, help="a slower response is an error")
    parser.add_argument("--flights", type=int, default=2000, help="distinct real flights to request")
    parser.add_argument(
        "--client", choices=["raw", "httpx"], default="raw", help="load generator's HTTP client"
    )
    parser.add_argument("--materialize", action="store_true", help="materialize Redis even if present")
    parser.add_argument("--workers", type=int, default=1, help="mlops serve --workers (server processes)")
    parser.add_argument(
        "--serve-args", default="", help='more `mlops serve` options, e.g. "--switch-interval 0.005"'
    )
    parser.add_argument("--smoke", action="store_true", help="5 s phases, one repeat, a short ramp")
    parser.add_argument("--profile", action="store_true", help="cProfile the request path instead")
    parser.add_argument("--stages", action="store_true", help="time each stage of a request instead")
    parser.add_argument(
        "--compare",
        help='";"-separated variants of `mlops serve` options to compare at --rate instead (e.g. '
        '"--switch-interval 0.005;" compares that with the defaults; "floor" is bench/floor_app.py; '
        '"@<dir> [options]" serves from another checkout, e.g. a git worktree of an earlier commit)',
    )
    parser.add_argument(
        "--scrape-s",
        type=float,
        default=15.0,
        help="with --compare: GET /metrics this often from variants that serve it (Prometheus's default "
        "interval; 0: never)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.steady_s, args.hold_s, args.repeats = 5.0, 5.0, 1
        args.ramp, args.ramp_batch = "100,200", "5,10"

    home = args.home.resolve()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    window = feature_window(home)
    bodies = sample_flights(home, window, args.flights)
    ensure_redis(home, window, bodies[0], args.materialize)
    if args.profile:
        profile(home, bodies, 2000)
        return
    if args.stages:
        stages(home, bodies, 1000)
        return
    if args.compare is not None:
        table = compare(home, bodies, [v.strip() for v in args.compare.split(";")], args)
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_FILE.with_name("serving_compare.json").write_text(json.dumps(table, indent=1))
        return

    batches = [
        {"flights": bodies[i : i + args.batch]} for i in range(0, len(bodies) - args.batch + 1, args.batch)
    ]
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"serving-bench-{os.getpid()}.log"
    service = Service(home, free_port(), log_path, args.workers, args.serve_args)
    try:
        health = service.wait_healthy()
        args.service_pid = service.process.pid
        version, store = health["champion_version"], health["feature_store"]
        log(f"service up at {service.url}: champion version {version}, online store {store}")
        phase(service.url, "/predict", bodies, 50, 5, args)  # warm-up, not reported
        results = {
            "home": str(home),
            "window": window,
            "champion_version": health["champion_version"],
            "batch_size": args.batch,
            "workers": args.workers,
            "serve_args": args.serve_args,
            "cpu_count": os.cpu_count(),
            "steady_single": steady(service.url, "/predict", bodies, args.rate, args),
            "steady_batch": steady(service.url, "/predict/batch", batches, args.batch_rate, args),
            "ramp_single": ramp(
                service.url, "/predict", bodies, [float(r) for r in args.ramp.split(",")], args
            ),
            "ramp_batch": ramp(
                service.url, "/predict/batch", batches, [float(r) for r in args.ramp_batch.split(",")], args
            ),
            "load_average_end": os.getloadavg()[0],
        }
    finally:
        service.stop()
    print_tables(results)
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=1))
    log(f"figures written to {RESULTS_FILE}; service log {log_path}")


if __name__ == "__main__":
    main()
