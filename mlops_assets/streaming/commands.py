"""`mlops stream`: the live feed's producer and the lake consumer (docs/streaming.md)."""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import time

DEFAULT_NAME = "lake"
HELP = """examples:
  mlops stream --start 2013-04-01 --end 2013-04-07 --speed 600
        publish the week's events in event-time order, a day of 2013 every 2.4 minutes
  mlops stream consume
        write every event once into the lake, land each completed day in the landing zone
  mlops stream consume --online
        the same, and each hour's weather features and delay statistics pushed to the online store
  mlops stream consume --exit-when-idle 30
        the same, stopping after 30 s without a message
The broker is MLOPS_BROKER_URL (default amqp://guest:guest@127.0.0.1:5672/%2F, RabbitMQ);
--exchange/--queue name the topology (defaults mlops.stream / mlops.stream.lake)."""


def _broker(args: argparse.Namespace):
    from mlops_assets.lib.settings import load_settings
    from mlops_assets.resources.broker import broker_resource, resolved_broker

    return resolved_broker(broker_resource(load_settings(), exchange=args.exchange, queue=args.queue))


def cmd_stream(args: argparse.Namespace) -> int:
    return consume(args) if args.action == "consume" else publish(args)


def publish(args: argparse.Namespace) -> int:
    from mlops_assets.streaming.events import iter_window_events, local_midnight
    from mlops_assets.streaming.producer import publish_events

    print(f"the events of {args.start}..{args.end} at speed {args.speed:g} to {args.exchange}", flush=True)
    events = iter_window_events(args.start, args.end)
    summary = publish_events(
        _broker(args), events, args.speed, log=_flushed, clock_start=local_midnight(args.start)
    )
    rate = summary.published / summary.seconds if summary.seconds else 0.0
    print(f"published {summary.published} event(s) in {summary.seconds:.1f}s ({rate:.0f}/s), confirmed")
    return 0


def consume(args: argparse.Namespace) -> int:
    from mlops_assets.demo import profile_store
    from mlops_assets.streaming.consumer import ConsumerOptions, LakeConsumer

    options = ConsumerOptions(
        batch_size=args.batch_size,
        max_wait_s=args.max_wait,
        exit_when_idle_s=args.exit_when_idle,
        crash_after_batches=args.crash_after_batches,
        online_feast=_online_feast() if args.online else None,
    )
    consumer = LakeConsumer(
        _broker(args), profile_store("lake"), profile_store("landing_zone"), args.name, options, _flushed
    )
    for number in (signal.SIGINT, signal.SIGTERM):  # `make stop` sends SIGTERM: finish the batch, then stop
        signal.signal(number, lambda *_: consumer.stop.set())
    started = time.monotonic()
    stats = consumer.run()
    print(
        f"consumed for {time.monotonic() - started:.1f}s: {stats.written} event(s) written in "
        f"{stats.batches} batch(es), {stats.duplicates} duplicate(s) dropped, {stats.rejected} rejected, "
        f"{len(stats.landed)} day file(s) landed, {stats.reconnects} reconnect(s), {consumer.days.late} late"
        + (
            f", {consumer.weather.pushed} weather row(s) and {consumer.delays.pushed} delay statistics "
            f"row(s) of {consumer.delays.hours} hour(s) pushed online"
            if consumer.weather and consumer.delays
            else ""
        )
    )
    return 0


def _online_feast():
    import dagster as dg

    from mlops_assets.lib.settings import load_settings
    from mlops_assets.resources.feature_store import feast_resource

    with dg.build_resources({"feast": feast_resource(load_settings())}) as built:
        return built.feast


def _flushed(line: str) -> None:
    print(line, flush=True)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from error


def add_stream_command(commands) -> None:
    stream = commands.add_parser(
        "stream",
        help="the live feed through a broker: publish (default) or consume into the lake",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stream.add_argument("action", nargs="?", choices=["publish", "consume"], default="publish")
    stream.add_argument("--start", type=_date, default=dt.date(2013, 4, 1), help="publish: first day")
    stream.add_argument("--end", type=_date, default=dt.date(2013, 4, 7), help="publish: last day")
    stream.add_argument(
        "--speed",
        type=float,
        default=600.0,
        help="publish: speed-up of 2013's clock (0: no waiting)",
    )
    stream.add_argument("--exchange", default="mlops.stream", help="the topic exchange")
    stream.add_argument("--queue", default="mlops.stream.lake", help="the lake consumer's durable queue")
    stream.add_argument("--name", default=DEFAULT_NAME, help="consume: the stream's folder, lake/stream/NAME")
    stream.add_argument("--batch-size", type=int, default=500, help="consume: most events per micro-batch")
    stream.add_argument(
        "--max-wait", type=float, default=0.5, help="consume: longest wait (s) for a micro-batch to fill"
    )
    stream.add_argument(
        "--exit-when-idle", type=float, metavar="S", help="consume: stop after S s without a message"
    )
    stream.add_argument(
        "--online",
        action="store_true",
        help="consume: also push each hour's weather and delay statistics online (after feast apply)",
    )
    # For the crash tests: SIGKILL itself between a batch's durable write and its acknowledgement.
    stream.add_argument("--crash-after-batches", type=int, help=argparse.SUPPRESS)
    stream.set_defaults(handler=cmd_stream)
