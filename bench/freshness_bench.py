"""Freshness of the closed loop: from a day's files landing to its drift report, with the daemon running.

    .venv/bin/python bench/freshness_bench.py --home /tmp/demo_home --days 2013-04-01..2013-04-05

Starts `dagster-daemon run` on the home's instance (sensors, automation and the run queue exactly as
`make ui` runs them), waits until the graph is quiet, then lands one day at a time into the landing zone
(`mlops replay` of that day) and waits for `monitoring/drift_report` of that day. Per day it prints:

- freshness: landing -> drift_report materialized (wall clock);
- compute: the sum of the day's steps' own durations (Dagster's step stats of the runs tagged with that
  partition), and the rest of the wall time as orchestration overhead (sensor intervals, run queue,
  process starts, imports);

- the features step's own duration and the engine it ran on (the `spark` metadata of the day's
  `features/flight_features` materialization: "Spark Connect sc://..." or "embedded Spark local[2]");

then the median of each over the days. The home needs a champion (`make demo` with MLOPS_HOME=<home>), and
every day before the first one landed (a day's features wait for the 29 days before it).

The daemon's runs get this process's environment: `MLOPS_SPARK_REMOTE=sc://127.0.0.1:15002` before the
command sends the features to a warm Spark Connect server (`mlops cluster up --only spark`). With
`--alternate-spark sc://127.0.0.1:15002` the days take turns, first through that server, then embedded
(the daemon restarted between them with or without MLOPS_SPARK_REMOTE), and the medians are printed per
engine: the two are measured under the same load. With `--alternate-code <checkout>` (a git worktree of an
earlier commit, say) the days take turns between this checkout's code location and that one's (the
daemon restarted in it, with it on PYTHONPATH), the medians printed per checkout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DRIFT = ["monitoring", "drift_report"]
FEATURES = ["features", "flight_features"]
FEATURES_STEP = "features__flight_features"
REMOTE_ENV = "MLOPS_SPARK_REMOTE"


def parse_days(text: str) -> list[dt.date]:
    first, last = (dt.date.fromisoformat(part) for part in text.split(".."))
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def materialization(instance, key: list[str], day: str, after: float):
    """The partition's materialization after `after` (a day landed again has older ones), or None."""
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[day], after_timestamp=after),
        limit=1,
    ).records
    return records[0] if records else None


def materialized_at(instance, key: list[str], day: str, after: float) -> float | None:
    record = materialization(instance, key, day, after)
    return record.timestamp if record else None


def spark_engine(instance, day: str, after: float) -> str:
    """Where the day's features ran, from the materialization's `spark` metadata."""
    record = materialization(instance, FEATURES, day, after)
    entry = record.asset_materialization.metadata.get("spark") if record else None
    return str(entry.value) if entry is not None else "?"


def step_seconds(instance, runs, step_key: str) -> float:
    return sum(
        s.end_time - s.start_time
        for run in runs
        for s in instance.get_run_step_stats(run.run_id)
        if s.step_key == step_key and s.start_time and s.end_time
    )


def runs_of(instance, day: str, since: float):
    import dagster as dg

    records = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": day}))
    return [r.dagster_run for r in records if r.create_timestamp.timestamp() >= since]


def compute_seconds(instance, runs, until: float) -> float:
    """The steps' own durations, of the steps that ended by `until` (the drift report's materialization)."""
    total = 0.0
    for run in runs:
        for step in instance.get_run_step_stats(run.run_id):
            if step.start_time and step.end_time and step.end_time <= until + 1:
                total += step.end_time - step.start_time
    return total


def timeline(instance, runs, landed: float) -> list[str]:
    """One line per run, in launch order: created / started / ended (seconds after landing) and its
    steps' own durations, so the overhead can be placed (sensor waits, queue, process start, imports)."""
    lines = []
    for run in sorted(runs, key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp):
        record = instance.get_run_record_by_id(run.run_id)
        created = record.create_timestamp.timestamp() - landed
        started = (record.start_time or landed) - landed
        ended = (record.end_time or landed) - landed
        steps = ", ".join(
            f"{s.step_key} {s.end_time - s.start_time:.1f}"
            for s in instance.get_run_step_stats(run.run_id)
            if s.start_time and s.end_time
        )
        lines.append(f"    +{created:5.1f} queued, +{started:5.1f} started, +{ended:5.1f} ended: {steps}")
    return lines


def busy(instance) -> bool:
    import dagster as dg

    active = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    return bool(instance.get_run_ids(dg.RunsFilter(statuses=active), limit=1))


def wait_quiet(instance, quiet_s: float, limit_s: float) -> None:
    started, quiet_since = time.time(), time.time()
    while time.time() - started < limit_s:
        if busy(instance):
            quiet_since = time.time()
        elif time.time() - quiet_since >= quiet_s:
            return
        time.sleep(2)
    raise SystemExit(f"the graph did not go quiet within {limit_s:.0f} s")


def land(day: dt.date, env: dict[str, str], landing: Path) -> float:
    """Lands the day; returns when its files landed: the newest modification time of the day's files in
    the landing zone (the replay's process can exit seconds later on a loaded machine, by when the sensor
    may have queued the day's run), or the replay's exit where the zone is not a local folder."""
    before = time.time()
    command = [str(BIN / "mlops"), "replay", "--start", str(day), "--end", str(day), "--no-reference"]
    subprocess.run(command, env=env, check=True, capture_output=True)
    written = [p.stat().st_mtime for p in landing.glob(f"*/{day}.*") if p.stat().st_mtime >= before - 1]
    return max(written, default=time.time())


def start_daemon(env: dict[str, str], log, checkout: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", str(checkout / "workspace.yaml")],
        env=env,
        cwd=checkout,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop_daemon(daemon: subprocess.Popen) -> None:
    daemon.terminate()
    daemon.wait(timeout=60)


def median_row(label: str, rows) -> str:
    fresh = statistics.median(r[1] for r in rows)
    compute = statistics.median(r[2] for r in rows)
    features = statistics.median(r[4] for r in rows)
    overhead = 1 - min(compute, fresh) / fresh
    return f"{label:<12}{fresh:>12.1f}{compute:>11.1f}{overhead:>10.1%}{'':>6}{features:>12.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", required=True, help="MLOPS_HOME with a champion (make demo)")
    parser.add_argument("--days", default="2013-04-01..2013-04-05", help="first..last day to land")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for one day")
    parser.add_argument(
        "--alternate-spark",
        metavar="URL",
        help="Spark Connect URL: days alternate between it and an embedded session (daemon restarted)",
    )
    parser.add_argument(
        "--alternate-code",
        metavar="CHECKOUT",
        type=Path,
        help="another checkout: days alternate between this one's code and its (daemon restarted)",
    )
    args = parser.parse_args()

    home = Path(args.home).resolve()
    env = {**os.environ, "MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home")}
    os.environ.update({k: env[k] for k in ("MLOPS_HOME", "DAGSTER_HOME")})
    import dagster as dg

    days = parse_days(args.days)
    if args.alternate_spark:
        remotes = [args.alternate_spark if n % 2 == 0 else None for n in range(len(days))]
    else:
        remotes = [env.get(REMOTE_ENV)] * len(days)
    other = args.alternate_code.resolve() if args.alternate_code else None
    checkouts = [ROOT if n % 2 == 0 or other is None else other for n in range(len(days))]
    turns = list(zip(remotes, checkouts, strict=True))

    def env_for(remote: str | None, checkout: Path) -> dict[str, str]:
        base = {k: v for k, v in env.items() if k != REMOTE_ENV}
        if checkout != ROOT:
            base["PYTHONPATH"] = str(checkout)
        return {**base, REMOTE_ENV: remote} if remote else base

    log = open(home / "freshness_daemon.log", "w")  # noqa: SIM115 (open for the daemon's lifetime)
    daemon = start_daemon(env_for(*turns[0]), log, turns[0][1])
    running = turns[0]
    rows = []
    try:
        with dg.DagsterInstance.get() as instance:
            print("daemon started; waiting for the graph to be quiet (backlog first) ...", flush=True)
            time.sleep(30)
            wait_quiet(instance, quiet_s=40, limit_s=3600)
            for day, turn in zip(days, turns, strict=True):
                if turn != running:
                    stop_daemon(daemon)
                    daemon, running = start_daemon(env_for(*turn), log, turn[1]), turn
                    time.sleep(30)  # its first ticks and code location load are not the day's
                    wait_quiet(instance, quiet_s=15, limit_s=args.timeout)
                landed = land(day, env, home / "landing")
                done = None
                while done is None and time.time() - landed < args.timeout:
                    time.sleep(1)
                    done = materialized_at(instance, DRIFT, day.isoformat(), landed)
                if done is None:
                    raise SystemExit(f"{day}: no drift report after {args.timeout:.0f} s")
                wait_quiet(instance, quiet_s=15, limit_s=args.timeout)  # performance report etc.
                runs = runs_of(instance, day.isoformat(), landed)
                compute = compute_seconds(instance, runs, done)
                features = step_seconds(instance, runs, FEATURES_STEP)
                engine = spark_engine(instance, day.isoformat(), landed)
                if other is not None:
                    engine = f"{engine}, {'this checkout' if turn[1] == ROOT else other}"
                fresh = done - landed
                rows.append((day, fresh, compute, len(runs), features, engine))
                print(
                    f"{day}: freshness {fresh:6.1f} s, steps' compute {compute:6.1f} s, "
                    f"overhead {1 - min(compute, fresh) / fresh:5.1%}, runs {len(runs)}, "
                    f"features {features:.1f} s on {engine}",
                    flush=True,
                )
                print("\n".join(timeline(instance, runs, landed)), flush=True)
    finally:
        stop_daemon(daemon)
        log.close()
    header = f"{'day':<12}{'freshness s':>12}{'compute s':>11}{'overhead':>10}{'runs':>6}{'features s':>12}"
    print(f"\n{header}  spark")
    for day, f, c, n, feat, engine in rows:
        print(f"{day!s:<12}{f:>12.1f}{c:>11.1f}{1 - min(c, f) / f:>10.1%}{n:>6}{feat:>12.1f}  {engine}")
    for engine in dict.fromkeys(r[5] for r in rows):
        of_engine = [r for r in rows if r[5] == engine]
        print(f"{median_row('median', of_engine)}  {engine} ({len(of_engine)} days)")
    print("(compute: the sum of the durations of the day's steps that ended by its drift report;")
    print(" features: the features step's own duration)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
