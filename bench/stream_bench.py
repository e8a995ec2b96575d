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
    def __init__(self, home: Path, broker: RabbitMQBroker, url: str | None = None) -> None:
        env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_PROFILE": "local"}
        env["MLOPS_BROKER_URL"] = url or broker.url
        self.log = home / f"consumer-{time.monotonic_ns()}.log"
        command = [sys.executable, "-m", "mlops_assets.cli", "stream", "consume", "--exchange"]
        command += [broker.exchange, "--queue", broker.queue, "--max-wait", "0.1"]
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--day", type=dt.date.fromisoformat, default=dt.date(2013, 4, 1))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=5.0)
    parser.add_argument("--cut-every", type=float, default=3.0)
    args = parser.parse_args()
    events = window_events(args.day, args.day)
    print(f"{len(events)} events of {args.day}; {os.cpu_count()} CPU(s); RabbitMQ quorum queue")
    runs: list[dict[str, float]] = []
    for number in range(args.repeats):
        run = {**throughput(events), **drain(events), **latency(events, args.day)}
        run.update(faults(events, args.day, args.kill_every, args.cut_every))
        print(f"repeat {number + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in run.items()))
        sys.stdout.flush()
        runs.append(run)
    print("medians: " + ", ".join(f"{k}={statistics.median(r[k] for r in runs):.4g}" for k in runs[0]))


if __name__ == "__main__":
    main()
