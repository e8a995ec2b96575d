"""The lake consumer: broker -> durable micro-batches -> day files in the landing zone, exactly once.

One loop, in this order, is what makes it exactly once:
1. fetch up to `batch_size` messages (or what came within `max_wait_s`);
2. drop those whose id is already recorded (a redelivery after a crash or a dropped connection, or a
   producer that published again) or repeated inside the batch;
3. write the rest as one batch file (atomic) in the lake, and take them into the open days' state;
4. only then acknowledge, cumulatively, through the batch's last message;
5. land every day that is now complete (`assembly.py`) into the landing zone, unless its file is there.

Killed before 3: nothing was acknowledged, the broker redelivers, the batch is written then. Killed
between 3 and 4: the batch is in the lake, the broker redelivers it, step 2 drops every message of it.
Killed between 3 and 5: a restart rebuilds the day state from the lake and lands what is complete. A day
file is written once (temporary name, then rename) and never replaced, so the landing-zone sensor sees
one delivery of it, as from a file drop.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlops_assets.ingestion.layout import landing_key
from mlops_assets.resources.broker import BrokerDisconnected, MessageBroker
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.streaming.assembly import DayAssembler
from mlops_assets.streaming.events import StreamEvent
from mlops_assets.streaming.lake_log import LakeLog


@dataclass
class ConsumerStats:
    written: int = 0  # events written to the lake by this process
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    reconnects: int = 0
    landed: list[str] = field(default_factory=list)


@dataclass
class ConsumerOptions:
    batch_size: int = 500
    max_wait_s: float = 0.5
    exit_when_idle_s: float | None = None  # stop after this long without a message (tests, benchmarks)
    # Testing the crash window between a durable write and its acknowledgement: SIGKILL this process
    # right after writing this many batches, before acknowledging the last of them.
    crash_after_batches: int | None = None
    # Push each hour's weather features and delay statistics to the online store as the stream reaches it
    # (online_weather.py, online_delays.py); a FeastResource whose registry has been applied.
    online_feast: Any = None


class LakeConsumer:
    def __init__(
        self,
        broker: MessageBroker,
        lake: ObjectStore,
        landing_zone: ObjectStore,
        name: str,
        options: ConsumerOptions | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.broker, self.landing_zone, self.log = broker, landing_zone, log
        self.options = options or ConsumerOptions()
        self.record = LakeLog(lake, name)
        self.stats = ConsumerStats()
        self.stop = threading.Event()
        self.seen: set[str] = set()
        self.days = DayAssembler()
        self.weather = None
        self.delays = None
        if self.options.online_feast is not None:
            from mlops_assets.streaming.online_delays import DelayFollower
            from mlops_assets.streaming.online_weather import WeatherFollower

            self.weather = WeatherFollower(self.options.online_feast)
            self.delays = DelayFollower(self.options.online_feast, landing_zone, log)

    def recover(self) -> None:
        """The ids already written and the state of the open days, from the lake alone."""
        for raw in self.record.records():
            self.seen.add(raw["id"])
            event = StreamEvent.from_json(raw)
            self.days.apply(event)
            if self.weather is not None and raw["kind"] == "weather.observed":
                self.weather.remember([raw["fields"]])
            if self.delays is not None:
                self.delays.take([event])
        for table, day in list(self.days.rows):
            if self.landing_zone.exists(landing_key(table, day)):
                self.days.mark_landed(table, day)  # landed before the restart: its file stays as it is
        self.land_complete_days()
        self.log(f"recovered {len(self.seen)} event id(s) from {len(self.record.batch_keys())} batch(es)")

    def run(self) -> ConsumerStats:
        self.recover()
        idle_since = time.monotonic()
        backoff = 0.2
        while not self.stop.is_set():
            try:
                with self.broker.subscriber(prefetch=2 * self.options.batch_size) as source:
                    backoff = 0.2
                    while not self.stop.is_set():
                        deliveries = source.fetch(self.options.batch_size, self.options.max_wait_s)
                        if not deliveries:
                            idle = self.options.exit_when_idle_s
                            if idle is not None and time.monotonic() - idle_since >= idle:
                                self.stop.set()
                            continue
                        idle_since = time.monotonic()
                        # Applied before the acknowledgement: should the ack fail, the batch comes back as
                        # duplicates, which are dropped, so its events must already be in the day state.
                        fresh = self.write_batch(deliveries)
                        for event in fresh:
                            self.days.apply(event)
                        source.ack_through(deliveries[-1])
                        self.land_complete_days()
                        self.follow_online(fresh)
            except BrokerDisconnected as error:
                # Unacknowledged messages go back to the queue; recorded ones come back as duplicates.
                self.stats.reconnects += 1
                self.log(f"broker connection lost ({error}); reconnecting in {backoff:.1f}s")
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        return self.stats

    def write_batch(self, deliveries) -> list[StreamEvent]:
        """Write the new events of a batch durably and record their ids; returns the new events."""
        records, rejected, fresh, ids = [], [], [], set()
        for delivery in deliveries:
            try:
                event = StreamEvent.from_json(delivery.body)
            except (ValueError, KeyError, TypeError) as error:
                body = delivery.body.decode(errors="replace")
                rejected.append({"message_id": delivery.message_id, "error": repr(error), "body": body})
                continue
            if event.id in self.seen or event.id in ids:
                self.stats.duplicates += 1
                continue
            ids.add(event.id)
            fresh.append(event)
            records.append({**json.loads(event.to_json()), "published_at": delivery.published_at})
        if rejected:
            self.record.write(rejected, kind="rejected")
            self.stats.rejected += len(rejected)
        if records:
            written_at = time.time()  # just before the write: what publish->lake latency is measured to
            for record in records:
                record["written_at"] = written_at
            self.record.write(records)
            self.seen |= ids
            self.stats.written += len(records)
            self.stats.batches += 1
            if self.options.crash_after_batches == self.stats.batches:
                os.kill(os.getpid(), signal.SIGKILL)
        return fresh

    def follow_online(self, fresh: list[StreamEvent]) -> None:
        """Best effort: the lake is the record; an hour that fails to push is superseded within the hour."""
        if self.weather is None or self.delays is None:
            return
        self.delays.take(fresh)
        pushes = (
            (
                "weather",
                lambda: self.weather.observe([e.fields for e in fresh if e.kind == "weather.observed"]),
            ),
            ("delay statistics", lambda: self.delays.follow(self.days.watermark)),
        )
        for what, push in pushes:
            try:
                push()
            except Exception as error:  # the online store must not stop the lake's ingestion
                self.log(f"online push of {what} failed ({error!r}); the next hour supersedes it")

    def land_complete_days(self) -> None:
        for table, day in self.days.complete():
            key = landing_key(table, day)
            # Never replace a landed file: the sensor would ingest it as a new delivery.
            if not self.landing_zone.exists(key):
                self.landing_zone.write_bytes(key, self.days.day_file(table, day))
                self.stats.landed.append(key)
                self.log(f"landed {key} (watermark {self.days.watermark:%Y-%m-%d %H:%M} UTC)")
            self.days.mark_landed(table, day)
