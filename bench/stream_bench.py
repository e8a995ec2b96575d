"""Streaming ingestion's figures against the real RabbitMQ (docs/streaming.md#figures).

    .venv/bin/python bench/stream_bench.py [--day 2013-04-01] [--repeats 3]

Each repeat uses a fresh queue, exchange and MLOPS_HOME (deleted afterwards) and a consumer in its own
process (`mlops stream consume`), as in production; the producer runs in this process. Three phases:

- throughput: the day's events published as fast as the broker confirms them; events/s from the first
  publish until the last event is in the lake, and the consumer's CPU seconds per 1,000 events (user +
  system of its process over that span, from /proc).
- drain: the producer alone into the queue, then the consumer alone from the full queue into the lake.
- latency: the same day at speed 7200 (about 200 events/s at the busiest hour); publish -> lake latency
  of each event = the batch's write time minus the producer's publish time, p50 and p99.
- faults: the same day at speed 3600 while the consumer is killed with SIGKILL every --kill-every s
  (and restarted) and every broker connection, producer's and consumer's, is cut every --cut-every s
  (a TCP proxy between them and RabbitMQ); then events published, events in the lake, duplicates.
- online: the same day at --online-speed with `consume --online` over a landing zone holding the 29 days
  before (so the 28-day statistics are whole), while this process polls the online store every 20 ms
  for EWR's `delay_stats_origin` snapshot. Per hour H: the clock tick of H published -> the snapshot of
  H readable (the consumer's own latency); per arrival: published -> the first snapshot that counts it
  readable (wall time at that speed; most of it is the wait for the next hour, as training's hourly
  snapshots define the feature); and the consumer's CPU per hour of the day.

Prints each repeat, then the medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops_assets.resources.broker import LOCAL_BROKER_URL, RabbitMQBroker
from mlops_assets.resources.storage import LocalObjectStore
from mlops_assets.streaming.events import local_midnight, window_events
from mlops_assets.streaming.lake_log import LakeLog
from mlops_assets.streaming.producer import publish_events
from tests.tcp_proxy import TcpProxy

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class Consumer:
    def __init__(self, home: Path, broker: RabbitMQBroker, url: str | None = None, *extra: str) -> None:
        env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_PROFILE": "local"}
        env["MLOPS_BROKER_URL"] = url or broker.url
        self.log = home / f"consumer-{time.monotonic_ns()}.log"
        command = [sys.executable, "-m", "mlops_assets.cli", "stream", "consume", "--exchange"]
        command += [broker.exchange, "--queue", broker.queue, "--max-wait", "0.1", *extra]
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while "recovered" not in self.log.read_text():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the consumer did not start: {self.log.read_text()}")
            time.sleep(0.02)

    def stop(self, kill: bool = False) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(timeout=30)


def records(home: Path) -> list[dict]:
    return list(LakeLog(LocalObjectStore(root=str(home / "lake")), "lake").records())


def wait_for(home: Path, count: int, timeout: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(found := records(home)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(found)} of {count} events reached the lake")
        time.sleep(0.05)
    return found


def fresh(tag: str) -> tuple[RabbitMQBroker, Path]:
    name = f"mlops-bench-{tag}-{uuid.uuid4().hex[:8]}"
    broker = RabbitMQBroker(url=LOCAL_BROKER_URL, exchange=name, queue=f"{name}.lake")
    broker.declare()
    return broker, Path(tempfile.mkdtemp(prefix=f"stream-bench-{tag}-"))


def throughput(events) -> dict[str, float]:
    broker, home = fresh("rate")
    try:
        consumer = Consumer(home, broker)
        consumer.wait_ready()
        cpu_before, started = cpu_seconds(consumer.process.pid), time.monotonic()
        publish_events(broker, events, speed=0, log=lambda _: None)
        wait_for(home, len(events))
        elapsed, cpu = time.monotonic() - started, cpu_seconds(consumer.process.pid) - cpu_before
        consumer.stop()
        return {"events_per_s": len(events) / elapsed, "consumer_cpu_ms_per_1000": 1e6 * cpu / len(events)}
    finally:
        broker.delete()
        shutil.rmtree(home, ignore_errors=True)


def drain(events) -> dict[str, float]:
    """The producer alone (publish into the queue with no consumer), then the consumer alone (a full queue
    into the lake): which side bounds the end-to-end rate."""
    broker, home = fresh("drain")
    try:
        started = time.monotonic()
        publish_events(broker, events, speed=0, log=lambda _: None)
        published = time.monotonic() - started
        consumer = Consumer(home, broker)
        consumer.wait_ready()
        cpu_before, started = cpu_seconds(consumer.process.pid), time.monotonic()
        wait_for(home, len(events))
        elapsed, cpu = time.monotonic() - started, cpu_seconds(consumer.process.pid) - cpu_before
        consumer.stop()
        return {
            "producer_alone_per_s": len(events) / published,
            "consumer_alone_per_s": len(events) / elapsed,
            "consumer_alone_cpu_ms_per_1000": 1e6 * cpu / len(events),
        }
    finally:
        broker.delete()
        shutil.rmtree(home, ignore_errors=True)


def latency(events, start: dt.date) -> dict[str, float]:
    broker, home = fresh("latency")
    try:
        consumer = Consumer(home, broker)
        consumer.wait_ready()
        publish_events(broker, events, speed=7200, log=lambda _: None, clock_start=local_midnight(start))
        found = wait_for(home, len(events))
        consumer.stop()
        delays = sorted(1000 * (r["written_at"] - r["published_at"]) for r in found)
        return {"latency_p50_ms": delays[len(delays) // 2], "latency_p99_ms": delays[int(0.99 * len(delays))]}
    finally:
        broker.delete()
        shutil.rmtree(home, ignore_errors=True)


def faults(events, start: dt.date, kill_every: float, cut_every: float) -> dict[str, float]:
    broker, home = fresh("faults")
    proxy = TcpProxy(("127.0.0.1", 5672))
    try:
        via_proxy = RabbitMQBroker(url=proxy.url(), exchange=broker.exchange, queue=broker.queue)
        consumer = Consumer(home, broker, url=proxy.url())
        publisher = threading.Thread(
            target=publish_events,
            args=(via_proxy, events, 3600),
            kwargs={"log": lambda _: None, "clock_start": local_midnight(start)},
            daemon=True,
        )
        publisher.start()
        kills = 0
        next_kill, next_cut = time.monotonic() + kill_every, time.monotonic() + cut_every
        while publisher.is_alive():
            time.sleep(0.05)
            if time.monotonic() >= next_kill:
                consumer.stop(kill=True)
                kills += 1
                consumer = Consumer(home, broker, url=proxy.url())
                next_kill += kill_every
            if time.monotonic() >= next_cut:
                proxy.cut()
                next_cut += cut_every
        found = wait_for(home, len(events))
        time.sleep(1.0)  # anything still arriving would be a duplicate: give it the chance to show
        consumer.stop()
        ids = [r["id"] for r in records(home)]
        return {
            "published": len(events),
            "in_lake": len(set(ids)),
            "lost": len({e.id for e in events} - set(ids)),
            "duplicates": sum(n - 1 for n in Counter(ids).values()),
            "kills": kills,
            "cuts": proxy.cuts,
            "found": len(found),
        }
    finally:
        proxy.close()
        broker.delete()
        shutil.rmtree(home, ignore_errors=True)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class SnapshotPoller(threading.Thread):
    """When each hour's snapshot of EWR's delay statistics first becomes readable in the online store."""

    def __init__(self, feast) -> None:
        super().__init__(daemon=True)
        self.store = feast.get_store()
        self.seen: dict[dt.datetime, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            response = self.store.get_online_features(
                features=["delay_stats_origin:flights_1d"], entity_rows=[{"origin": "EWR"}]
            ).to_dict(include_event_timestamps=True)
            stamp = response["flights_1d__ts"][0]  # epoch seconds of the row's event timestamp
            if stamp:
                self.seen.setdefault(dt.datetime.fromtimestamp(stamp, dt.UTC), time.time())
            time.sleep(0.02)


def online(events, start: dt.date, speed: float) -> dict[str, float]:
    from mlops_assets.replay import replay
    from mlops_assets.resources.feature_store import FeastResource

    broker, home = fresh("online")
    try:
        replay(LocalObjectStore(root=str(home / "landing")), start - dt.timedelta(days=29), start)
        feast = FeastResource(profile="local", home=str(home))
        feast.apply()
        consumer = Consumer(home, broker, None, "--online")
        consumer.wait_ready()
        poller = SnapshotPoller(feast)
        poller.start()
        cpu_before = cpu_seconds(consumer.process.pid)
        publish_events(broker, events, speed=speed, log=lambda _: None, clock_start=local_midnight(start))
        found = wait_for(home, len(events))
        last_tick = max(r["time"] for r in found if r["kind"] == "clock.tick")
        last_hour = dt.datetime.fromisoformat(last_tick).astimezone(dt.UTC)
        deadline = time.monotonic() + 30
        while last_hour not in poller.seen and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu = cpu_seconds(consumer.process.pid) - cpu_before
        poller.done.set()
        poller.join()
        consumer.stop()
        ticks = {
            dt.datetime.fromisoformat(r["time"]).astimezone(dt.UTC): r["published_at"]
            for r in found
            if r["kind"] == "clock.tick"
        }
        # The day before is published at once (its clock is before the replay's start): only the newest
        # of those hours is pushed, and it is the cold one (29 landed files read, the first query).
        day_hours = sorted(h for h in ticks if h >= local_midnight(start))
        seen = [h for h in day_hours if h in poller.seen]
        hours = [1000 * (poller.seen[h] - ticks[h]) for h in seen]
        arrivals = []
        for record in found:
            if record["kind"] != "flight.arrived":
                continue
            counted_from = dt.datetime.fromisoformat(record["time"]).astimezone(dt.UTC)
            counted_from = counted_from.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
            readable = min((at for h, at in poller.seen.items() if h >= counted_from), default=None)
            if readable is not None:
                arrivals.append(1000 * (readable - record["published_at"]))
        return {
            "online_hours_seen": len(hours),
            "online_hours_ticked": len(day_hours),
            "tick_to_online_p50_ms": percentile(hours, 0.5),
            "tick_to_online_p99_ms": percentile(hours, 0.99),
            "arrival_to_online_p50_ms": percentile(arrivals, 0.5),
            "arrival_to_online_p99_ms": percentile(arrivals, 0.99),
            "online_consumer_cpu_ms_per_hour": 1000 * cpu / max(1, len(ticks)),
        }
    finally:
        broker.delete()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--day", type=dt.date.fromisoformat, default=dt.date(2013, 4, 1))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=5.0)
    parser.add_argument("--cut-every", type=float, default=3.0)
    parser.add_argument("--online-speed", type=float, default=1800.0)
    parser.add_argument(
        "--phases", default="throughput,drain,latency,faults,online", help="comma-separated subset"
    )
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    events = window_events(args.day, args.day)
    print(f"{len(events)} events of {args.day}; {os.cpu_count()} CPU(s); RabbitMQ quorum queue")
    runs: list[dict[str, float]] = []
    for number in range(args.repeats):
        run: dict[str, float] = {}
        if "throughput" in phases:
            run.update(throughput(events))
        if "drain" in phases:
            run.update(drain(events))
        if "latency" in phases:
            run.update(latency(events, args.day))
        if "faults" in phases:
            run.update(faults(events, args.day, args.kill_every, args.cut_every))
        if "online" in phases:
            run.update(online(events, args.day, args.online_speed))
        print(f"repeat {number + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in run.items()))
        sys.stdout.flush()
        runs.append(run)
    print("medians: " + ", ".join(f"{k}={statistics.median(r[k] for r in runs):.4g}" for k in runs[0]))


if __name__ == "__main__":
    main()
