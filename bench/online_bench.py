"""Feast online read latency, SQLite vs Redis, and the materialization time of one day.

    .venv/bin/python bench/online_bench.py [--reads 2000] [--home DIR]

Without --home, writes the synthetic feature files of tests/test_feast_store.py (4 days) into a
temporary MLOPS_HOME; with --home, uses `<home>/lake/features` as written by features/flight_features.
For each online store: apply, materialize one local day (timed), then `get_online_features` of the
feature service flight_delay_v1 for one flight (one entity row, 56 features), `--reads` times after
200 warm-up reads; p50/p99 in ms. Redis: 127.0.0.1:6379, a unique project, its keys deleted afterwards.
Reference: Feast's published Python feature server with Redis, p99 about 15 ms (over HTTP).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--day", default="2013-01-03")
    args = parser.parse_args()

    import pandas as pd

    from mlops_assets.features.online import MATERIALIZE_LOOKBACK, local_days_utc_span
    from mlops_assets.resources.feature_store import FeastResource

    home = args.home or Path(tempfile.mkdtemp(prefix="feast_bench_"))
    if args.home is None:
        from tests.test_feast_store import write_synthetic_lake

        write_synthetic_lake(home / "lake")
    schedule = pd.read_parquet(home / "lake" / "features" / "flight_schedule" / f"{args.day}.parquet")
    flight = schedule.iloc[len(schedule) // 2]
    row = {k: flight[k] for k in ("flight_id", "carrier", "origin", "dest", "route")}
    span_start, span_end = local_days_utc_span(args.day, args.day)

    results = []
    for online in ("sqlite", "redis"):
        project = f"bench_{online}_{uuid.uuid4().hex[:8]}"
        feast = FeastResource(profile="local", home=str(home), project=project, online_store=online)
        try:
            feast.apply()
            started = time.perf_counter()
            feast.materialize(span_start - MATERIALIZE_LOOKBACK, span_end)
            materialize_s = time.perf_counter() - started
            store = feast.get_store()
            service = store.get_feature_service("flight_delay_v1")

            def read(store=store, service=service):
                return store.get_online_features(features=service, entity_rows=[row], full_feature_names=True)

            values = read().to_dict()
            features = sum(1 for k in values if "__" in k)
            nulls = sum(1 for k, v in values.items() if "__" in k and v[0] is None)
            for _ in range(200):
                read()
            timings = []
            for _ in range(args.reads):
                t0 = time.perf_counter()
                read()
                timings.append((time.perf_counter() - t0) * 1000)
            timings.sort()
            results.append(
                (
                    online,
                    features,
                    nulls,
                    statistics.median(timings),
                    timings[int(0.99 * len(timings)) - 1],
                    materialize_s,
                )
            )
        finally:
            if online == "redis":
                import redis

                client = redis.Redis(host="127.0.0.1", port=6379)
                keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
                if keys:
                    client.delete(*keys)

    print(f"\nflight {row['flight_id']}, {args.reads} reads after 200 warm-up, in-process SDK, home {home}")
    print(f"{'store':<8}{'features':>9}{'nulls':>7}{'p50 ms':>9}{'p99 ms':>9}{'materialize 1 day s':>22}")
    for online, features, nulls, p50, p99, mat in results:
        print(f"{online:<8}{features:>9}{nulls:>7}{p50:>9.3f}{p99:>9.3f}{mat:>22.2f}")
    print("reference: Feast Python feature server + Redis, p99 ~15 ms (HTTP, published benchmark)")


if __name__ == "__main__":
    main()
