"""What shadow scoring costs the request path: `PredictionService.score` of one flight, in-process, with
`shadow` off and on, turns interleaved (no HTTP: the difference is the request path's own work plus the
shadow worker's competition for the GIL and the cores).

    .venv/bin/python -m bench.shadow_bench --home <home with a champion and another challenger> \
        --day 2013-01-20 --requests 2000 --rounds 3

Prints, per turn: p50/p99/max of a call's wall time, the process's CPU per request (all threads: the
shadow worker's scoring included), the flights the challenger scored and dropped, and how long the worker
took to drain its queue after the last request. The online store is the home's (SQLite by default).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def turn(home: Path, flights, shadow: bool, requests: int) -> dict:
    from mlops_assets.resources.feature_store import FeastResource
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.resources.tracking import MlflowResource
    from mlops_assets.serving.app import ServiceConfig, create_app

    with tempfile.TemporaryDirectory() as scratch:
        lake = LocalObjectStore(root=scratch)
        for table in ("airlines", "airports"):
            key = f"raw/{table}.parquet"
            lake.write_bytes(key, (home / "lake" / key).read_bytes())
        config = ServiceConfig(shadow=shadow, log_flush_interval_s=3600, metrics=False)
        feast = FeastResource(profile="local", home=str(home))
        mlflow = MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
        service = create_app(feast, mlflow, lake, config).state.service
        service.start()
        try:
            if shadow and (service.shadow is None or service.shadow.challenger is None):
                raise SystemExit("no challenger other than the champion in this home: nothing to shadow")
            walls = []
            cpu = time.process_time()
            for i in range(requests):
                flight = flights[i % len(flights)]
                began = time.perf_counter()
                service.score([flight], batch=False)
                walls.append(time.perf_counter() - began)
            last = time.perf_counter()
            if service.shadow is not None:
                service.shadow.stop()  # scores what is queued, then stops (service.stop() does it again)
            drained = time.perf_counter() - last
            cpu = time.process_time() - cpu
            stats = service.shadow.stats() if service.shadow else {"scored": 0, "dropped": 0}
        finally:
            service.stop()
    walls.sort()
    return {
        "shadow": shadow,
        "p50_ms": 1000 * statistics.median(walls),
        "p99_ms": 1000 * walls[int(0.99 * len(walls))],
        "max_ms": 1000 * walls[-1],
        "cpu_ms_per_request": 1000 * cpu / requests,
        "scored": stats["scored"],
        "dropped": stats["dropped"],
        "drain_ms": 1000 * drained,
    }


def main() -> None:
    import duckdb

    from mlops_assets.serving.flights import FlightRequest

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--day", default="2013-01-20")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with duckdb.connect(str(args.home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select carrier, flight_number, origin, dest, sched_dep_local from marts.fct_flights "
            "where flight_date = cast(? as date) order by flight_id limit 500",
            [args.day],
        ).fetchall()
    flights = [
        FlightRequest.model_validate(
            {
                "carrier": c,
                "flight_number": int(n),
                "origin": o,
                "dest": d,
                "scheduled_departure": s.isoformat(),
            }
        )
        for c, n, o, d, s in rows
    ]
    print("shadow  p50_ms  p99_ms  max_ms  cpu_ms/request  scored  dropped  drain_ms")
    for _ in range(args.rounds):
        for shadow in (False, True):
            r = turn(args.home, flights, shadow, args.requests)
            print(
                f"{'on' if r['shadow'] else 'off':<6}  {r['p50_ms']:6.3f}  {r['p99_ms']:6.3f}  "
                f"{r['max_ms']:6.2f}  {r['cpu_ms_per_request']:14.3f}  {r['scored']:6d}  "
                f"{r['dropped']:7d}  {r['drain_ms']:8.1f}"
            )


if __name__ == "__main__":
    main()
