"""`mlops report html monitoring/drift_report DAY`: Evidently's report of a monitored day, rendered on
demand from the inputs its asset recorded, over the day's page in the lake (the page its materialization
links to). Kept here so that the CLI module only registers it."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_assets.resources.storage import ObjectStore


def add_report_command(
    commands: Any, date: Callable[[str], dt.date], lake: Callable[[], ObjectStore]
) -> None:
    """The `report` subcommand on the CLI's subparsers (`date` parses a day, `lake` opens the lake)."""
    report = commands.add_parser("report", help="render Evidently's HTML report of a monitored day")
    report.add_argument("format", choices=["html"])
    report.add_argument("asset", choices=["monitoring/drift_report"])
    report.add_argument("day", type=date)
    report.set_defaults(handler=lambda args: render_html(lake(), args))


def render_html(lake: ObjectStore, args: argparse.Namespace) -> int:
    import dagster as dg

    from mlops_assets.monitoring.drift import render_drift_html

    try:
        uri, same = render_drift_html(lake, args.day)
    except dg.Failure as error:
        raise SystemExit(error.description) from None
    print(f"{uri}: Evidently's drift report of {args.day}")
    if not same:
        print("warning: its figures differ from the day's record: the day's inputs changed since it ran")
    return 0
