"""Streaming ingestion (docs/streaming.md): events stamped with when they are known, exactly once into the
lake through a real RabbitMQ under kill -9 and dropped connections, and completed days landed as the very
files (and so the very raw partitions) that a delivery of the same days gives."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from mlops_assets.ingestion.layout import landing_key
from mlops_assets.resources.broker import RabbitMQBroker
from mlops_assets.resources.storage import LocalObjectStore
from mlops_assets.streaming.assembly import DayAssembler
from mlops_assets.streaming.events import StreamEvent, local_midnight, window_events
from mlops_assets.streaming.lake_log import LakeLog
from mlops_assets.streaming.producer import publish_events
from tests.tcp_proxy import TcpProxy

DAY = dt.date(2013, 1, 2)
DAY_FILES = (landing_key("flights", DAY.isoformat()), landing_key("weather", DAY.isoformat()))


@pytest.fixture(scope="module")
def day_events() -> list[StreamEvent]:
    return window_events(DAY, DAY)


def delivered_files(tmp_path: Path, first: dt.date, last: dt.date) -> dict[str, bytes]:
    """What the file path (`mlops replay`) lands for these days."""
    from mlops_assets.replay import replay

    zone = LocalObjectStore(root=str(tmp_path / "delivered"))
    replay(zone, first, last, include_reference=False)
    return {o.key: zone.read_bytes(o.key) for o in zone.list_objects()}


def start_consumer(home: Path, broker: RabbitMQBroker, *extra: str, url: str | None = None):
    env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_PROFILE": "local"}
    env["MLOPS_BROKER_URL"] = url or broker.url
    command = [sys.executable, "-m", "mlops_assets.cli", "stream", "consume"]
    command += ["--exchange", broker.exchange, "--queue", broker.queue, *extra]
    log = open(home / f"consumer-{time.monotonic_ns()}.log", "w")  # noqa: SIM115 - the process writes it
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 90) -> int:
    try:
        return process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def lake_ids(home: Path) -> list[str]:
    return [r["id"] for r in LakeLog(LocalObjectStore(root=str(home / "lake")), "lake").records()]


def landing(home: Path) -> LocalObjectStore:
    return LocalObjectStore(root=str(home / "landing"))


def assert_exactly_once(home: Path, events: list[StreamEvent]) -> None:
    ids = lake_ids(home)
    repeated = {i: n for i, n in Counter(ids).items() if n > 1}
    assert repeated == {}, f"{len(repeated)} event(s) written more than once"
    assert set(ids) == {e.id for e in events}, "events lost"


def test_every_event_is_stamped_when_it_is_known(day_events):
    by_flight: dict[str, dict[str, dt.datetime]] = {}
    for event in day_events:
        if event.table == "flights":
            by_flight.setdefault(event.id.rsplit("/", 1)[0], {})[event.kind] = event.time
        if event.kind == "weather.observed":  # an hour's row is complete at the end of that hour
            hour = dt.datetime.fromisoformat(event.fields["time_hour"].replace("Z", "+00:00"))
            assert event.time == hour + dt.timedelta(hours=1)
    assert len({e.id for e in day_events}) == len(day_events), "ids are not unique"
    assert [e.time for e in day_events] == sorted(e.time for e in day_events)
    kinds = Counter(frozenset(k) for k in by_flight.values())
    assert kinds[frozenset({"flight.scheduled", "flight.departed", "flight.arrived"})] > 800
    assert kinds[frozenset({"flight.scheduled", "flight.cancelled"})] > 0
    for times in by_flight.values():
        scheduled = times["flight.scheduled"]
        assert scheduled == local_midnight(DAY - dt.timedelta(days=1))  # the schedule is out the day before
        if "flight.departed" in times:
            assert scheduled < times["flight.departed"]
        if "flight.arrived" in times:  # an arrival is known only after its departure
            departed = times["flight.departed"]
            assert departed < times["flight.arrived"] < departed + dt.timedelta(hours=12)


@pytest.mark.parametrize("first,last", [(DAY, DAY), (dt.date(2013, 12, 30), dt.date(2013, 12, 31))])
def test_days_assembled_from_events_are_byte_for_byte_the_delivered_files(tmp_path, first, last):
    """Without a broker: the day files the consumer would land are those the file path lands (2013-12-31
    of weather has no rows: a header-only file, like the delivery's)."""
    days = DayAssembler()
    landed: dict[str, bytes] = {}
    for event in window_events(first, last):
        days.apply(event)
        for table, day in days.complete():
            landed[landing_key(table, day)] = days.day_file(table, day)
            days.mark_landed(table, day)
    assert landed == delivered_files(tmp_path, first, last)
    assert days.late == 0


def test_events_out_of_order_cannot_close_a_day_early(tmp_path, day_events):
    """The flights of a day land when the schedule manifest's count of flights is complete, so events in
    any order give the same file (and none is missing before the last event is in)."""
    import random

    shuffled = random.Random(13).sample(day_events, len(day_events))
    days, key = DayAssembler(), landing_key("flights", DAY.isoformat())
    closed_at = None
    for position, event in enumerate(shuffled, start=1):
        days.apply(event)
        if ("flights", DAY.isoformat()) in days.complete():
            closed_at = position
            break
    assert closed_at is not None, "the day never closed"
    later = shuffled[closed_at:]
    remaining = [e for e in later if e.table == "flights" and e.id.split("/")[1] == str(DAY)]
    assert remaining == []
    assert days.day_file("flights", DAY.isoformat()) == delivered_files(tmp_path, DAY, DAY)[key]


def test_the_producer_never_publishes_an_event_before_its_time(broker, day_events):
    """At speed 36000 an hour of 2013 is 0.1 s: each event's publish time, read back from the broker,
    is no earlier than its event time on the replayed clock (the first day's schedules, known the day
    before, go out at once)."""
    speed, clock_start = 36000.0, local_midnight(DAY)
    morning = [e for e in day_events if e.time < clock_start + dt.timedelta(hours=8)]
    started = time.time()
    publish_events(broker, morning, speed=speed, clock_start=clock_start)
    with broker.subscriber(prefetch=1000) as source:
        deliveries = []
        while batch := source.fetch(500, 0.5):
            deliveries += batch
            source.ack_through(batch[-1])
    due = {e.id: started + max((e.time - clock_start).total_seconds(), 0) / speed for e in morning}
    early = [d.message_id for d in deliveries if d.published_at < due[d.message_id] - 0.002]
    assert len(deliveries) == len(morning) and early == []
    assert max(d.published_at for d in deliveries) - started >= 7 * 3600 / speed  # it did wait


def test_a_streamed_day_is_the_same_raw_partition_as_its_delivery(broker, tmp_path, day_events):
    from tests.conftest import materialize_raw

    home = tmp_path / "home"
    home.mkdir()
    publish_events(broker, day_events, speed=0)
    publish_events(broker, day_events[:500], speed=0)  # published again: duplicates, not new events
    with broker.publisher() as publisher:  # a message the consumer cannot read is set aside, not lost
        publisher.publish("garbage-1", "flight.arrived", b"not json")
    assert finish(start_consumer(home, broker, "--exit-when-idle", "1.5")) == 0
    assert_exactly_once(home, day_events)
    lake = LocalObjectStore(root=str(home / "lake"))
    assert len(LakeLog(lake, "lake").batch_keys("rejected")) == 1
    streamed = {k: landing(home).read_bytes(k) for k in DAY_FILES}
    assert streamed == delivered_files(tmp_path, DAY, DAY)

    # Re-published after the day landed, and a restart: the landed files stay exactly as they were.
    versions = {k: landing(home).head(k).version for k in DAY_FILES}
    publish_events(broker, day_events[-300:], speed=0)
    assert finish(start_consumer(home, broker, "--exit-when-idle", "1.5")) == 0
    assert {k: landing(home).head(k).version for k in DAY_FILES} == versions
    assert_exactly_once(home, day_events)

    # The same raw partitions: the streamed files and the delivered ones through the raw assets.
    from mlops_assets.replay import replay

    delivered_home = tmp_path / "delivered_home"
    replay(landing(delivered_home), DAY, DAY)
    replay(landing(home), DAY, DAY, tables=())  # the reference tables only; the day files stay
    lakes = {h: LocalObjectStore(root=str(h / "lake")) for h in (home, delivered_home)}
    materialize_raw(landing(home), lakes[home], ["raw/airlines", "raw/airports", "raw/planes"])
    for table in ("airlines", "airports", "planes"):  # the same reference tables, accepted once: a run saved
        key = f"raw/{table}.parquet"
        lakes[delivered_home].write_bytes(key, lakes[home].read_bytes(key))
    partitions = []
    for zone_home, lake in lakes.items():
        materialize_raw(
            landing(zone_home), lake, ["raw/flights", "raw/weather"], partition_key=DAY.isoformat()
        )
        partitions.append({t: lake.read_bytes(f"raw/{t}/{DAY}.parquet") for t in ("flights", "weather")})
    assert partitions[0] == partitions[1]


def test_kill_9_and_redelivery_lose_nothing_and_duplicate_nothing(broker, tmp_path, day_events):
    home = tmp_path / "home"
    home.mkdir()
    publisher = threading.Thread(target=publish_events, args=(broker, day_events, 0), daemon=True)
    publisher.start()
    # Killed between a batch's durable write and its acknowledgement: the broker redelivers a batch that
    # is already in the lake.
    crashed = start_consumer(home, broker, "--batch-size", "100", "--crash-after-batches", "2")
    assert finish(crashed) == -9
    assert len(lake_ids(home)) == 200
    # kill -9 from outside at whatever point the consumer has reached, three times.
    for number in range(3):
        consumer = start_consumer(home, broker, "--batch-size", "100", "--max-wait", "0.2")
        written = len(lake_ids(home))
        deadline = time.monotonic() + 30
        while len(lake_ids(home)) < written + 150 + 40 * number and time.monotonic() < deadline:
            time.sleep(0.05)
        consumer.kill()
        assert consumer.wait() == -9
    publisher.join(timeout=60)
    assert not publisher.is_alive()
    last = start_consumer(home, broker, "--exit-when-idle", "1.5")
    assert finish(last) == 0
    # The crashed consumer's second batch was redelivered whole: had it not been dropped, ids would repeat.
    assert_exactly_once(home, day_events)
    assert {k: landing(home).read_bytes(k) for k in DAY_FILES} == delivered_files(tmp_path, DAY, DAY)


def test_dropped_connections_lose_nothing_and_duplicate_nothing(broker, tmp_path, day_events):
    home = tmp_path / "home"
    home.mkdir()
    proxy = TcpProxy(("127.0.0.1", 5672))
    try:
        via_proxy = RabbitMQBroker(url=proxy.url(), exchange=broker.exchange, queue=broker.queue)
        consumer = start_consumer(home, broker, "--batch-size", "100", "--max-wait", "0.2", url=proxy.url())
        publisher = threading.Thread(target=publish_events, args=(via_proxy, day_events, 0), daemon=True)
        publisher.start()
        for cut in range(4):  # producer and consumer lose their connections mid-stream
            target = len(day_events) * (cut + 1) // 5
            deadline = time.monotonic() + 30
            while len(lake_ids(home)) < target and time.monotonic() < deadline:
                time.sleep(0.05)
            # On a loaded machine the clients may still be reconnecting from the last cut: a cut needs a
            # connection to drop (the consumer's at least; the producer may have published everything).
            while proxy.open_sockets() < 2 and time.monotonic() < deadline + 30:
                time.sleep(0.05)
            assert proxy.cut() >= 2
        publisher.join(timeout=60)
        assert not publisher.is_alive()
        deadline = time.monotonic() + 60
        while len(set(lake_ids(home))) < len(day_events) and time.monotonic() < deadline:
            time.sleep(0.2)
        consumer.terminate()  # SIGTERM: the consumer finishes its batch and stops
        assert finish(consumer) == 0
    finally:
        proxy.close()
    assert_exactly_once(home, day_events)
    log = "".join(p.read_text() for p in home.glob("consumer-*.log"))
    assert log.count("broker connection lost") >= 4
    assert {k: landing(home).read_bytes(k) for k in DAY_FILES} == delivered_files(tmp_path, DAY, DAY)
