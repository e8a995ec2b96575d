"""The live feed: events of a window published in event-time order at a speed-up factor, each confirmed.

At `speed` S an hour of 2013 takes 3600/S seconds (600: a day in 2.4 minutes); speed 0 publishes as fast
as the broker confirms. An event is never published before its event time on the replayed clock, so a
consumer never sees a fact before it would have been known. A lost connection is re-opened and the
unconfirmed message published again: the consumer drops it if it did arrive (same id).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mlops_assets.resources.broker import BrokerDisconnected, MessageBroker
from mlops_assets.streaming.events import StreamEvent


@dataclass
class PublishSummary:
    published: int = 0
    reconnects: int = 0
    seconds: float = 0.0


def publish_events(
    broker: MessageBroker,
    events: Iterable[StreamEvent],
    speed: float,
    log: Callable[[str], None] = print,
    max_reconnects: int = 30,
    clock_start: dt.datetime | None = None,
) -> PublishSummary:
    """Publish `events` (in event-time order) with confirms. `clock_start`: the replayed instant that is
    now; earlier events (the first day's schedules, published the day before) go out at once instead of
    after a day of waiting. `max_reconnects`: consecutive failed connections before giving up."""
    summary = PublishSummary()
    upcoming = iter(events)
    event = next(upcoming, None)
    started = time.monotonic()
    origin = None
    last_day = None
    failures = 0
    while event is not None:
        try:
            with broker.publisher() as publisher:
                while event is not None:
                    if origin is None:
                        origin = max(event.time, clock_start) if clock_start else event.time
                    if speed > 0:
                        due = started + (event.time - origin).total_seconds() / speed
                        if (wait := due - time.monotonic()) > 0:
                            publisher.sleep(wait)
                    publisher.publish(event.id, event.kind, event.to_json())
                    summary.published += 1
                    failures = 0
                    if (day := event.time.date()) != last_day:
                        last_day = day
                        log(f"{time.strftime('%H:%M:%S')} {day} (UTC): {summary.published} published")
                    event = next(upcoming, None)
        except BrokerDisconnected as error:
            summary.reconnects += 1
            failures += 1
            if failures > max_reconnects:
                raise
            # The unconfirmed event is published again: a duplicate if it did arrive, dropped downstream.
            log(f"broker connection lost ({error}); publishing again from event {summary.published + 1}")
            time.sleep(min(0.2 * failures, 5.0))
    summary.seconds = time.monotonic() - started
    return summary
