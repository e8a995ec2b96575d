"""Schemathesis against the real prediction service: a real uvicorn on 127.0.0.1 serving the app over the
`champion_home` fixture's champion and SQLite online store, fuzzed from its own /openapi.json.

Schemathesis' engine (what `st run` drives) runs its phases against every operation: the examples (real
flights of the online store, added through the `before_add_examples` hook, so that answers of 200 are
checked against their schema too), the coverage phase (boundary and schema-violating values of every
field, unexpected methods) and the fuzzing phase (Hypothesis, positive and negative data). Every response
must pass the checks below: no 5xx, a documented status code, content type, headers and body schema, and
schema-violating data refused. The seed is fixed and generation deterministic, so CI sees the same
requests on every run; the table of status codes is printed (`pytest -s`) and in any failure message.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tests.test_serving import make_app, request_body, scheduled_flights, served

SEED = 20131103  # the day of the repeated hour
MAX_EXAMPLES = 500  # per operation in the fuzzing phase; about 1,200 requests in all, 20 s
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unsupported_method",
)
# positive_data_acceptance stays off: a generated flight that fits the schema is almost never a scheduled
# flight, and the right answer to it is a 422 unknown_flight, not a 200.


class CountingApp:
    """ASGI wrapper: counts the status of every response the server sends, by method, path and status."""

    def __init__(self, app) -> None:
        self.app = app
        self.counts: collections.Counter[tuple[str, str, int]] = collections.Counter()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted(message) -> None:
            if message["type"] == "http.response.start":
                self.counts[(scope["method"], scope["path"], message["status"])] += 1
            await send(message)

        await self.app(scope, receive, counted)


@dataclass
class FuzzResult:
    failures: list[str] = field(default_factory=list)
    phases: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def fuzz_config(seed: int = SEED, max_examples: int = MAX_EXAMPLES):
    import schemathesis

    checks: dict[str, Any] = {"enabled": False} | {name: {"enabled": True} for name in CHECKS}
    return schemathesis.Config.from_dict(
        {
            "seed": seed,
            "generation": {
                "mode": "all",
                "max-examples": max_examples,
                "deterministic": True,
                "database": "none",
            },
            "checks": checks,
            "phases": {"stateful": {"enabled": False}},  # no links between these operations
        }
    )


def run_fuzz(url: str, examples: dict[str, list[dict]], config) -> FuzzResult:
    """Schemathesis' engine against `url`/openapi.json; `examples`: extra bodies per operation path."""
    import schemathesis
    from schemathesis.engine import events

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)

    @schema.hook
    def before_add_examples(context, cases: list) -> None:
        operation = context.operation
        for body in examples.get(operation.path, []) if operation.method.upper() == "POST" else []:
            cases.append(operation.Case(body=body, media_type="application/json"))

    result, started = FuzzResult(), time.monotonic()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        result.failures.append(
                            f"{event.label}: {check.name}: {failure.title}: {failure.message}"
                        )
        elif isinstance(event, events.NonFatalError):
            result.failures.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.PhaseFinished):
            result.phases[event.phase.name.value] = event.status.value
    result.seconds = time.monotonic() - started
    return result


def status_table(counts: collections.Counter) -> str:
    """Requests by status code, then by operation (the schema download left out)."""
    fuzzed = {key: n for key, n in counts.items() if key[1] != "/openapi.json"}
    by_status = collections.Counter()
    for (_, _, status), n in fuzzed.items():
        by_status[status] += n
    lines = [
        f"{sum(by_status.values())} requests: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items()))
    ]
    for (method, path, status), n in sorted(fuzzed.items()):
        lines.append(f"  {method:<8}{ascii(path)[1:-1][:40]:<42}{status:>4}{n:>6}")
    return "\n".join(lines)


def real_examples(flights: pd.DataFrame) -> dict[str, list[dict]]:
    """Scheduled flights of the online store as a client may write them: a New York wall clock, the
    instant in UTC, lower-case codes; and a batch of them."""
    bodies = [request_body(f) for f in flights.head(3).itertuples()]
    flight = flights.iloc[4]
    utc = pd.Timestamp(flight.sched_dep_utc)
    utc = utc.tz_localize("UTC") if utc.tzinfo is None else utc
    bodies.append({**request_body(flight), "scheduled_departure": utc.isoformat()})
    bodies.append({**request_body(flights.iloc[5]), "carrier": flights.iloc[5].carrier.lower()})
    return {"/predict": bodies, "/predict/batch": [{"flights": bodies}]}


def test_schemathesis_finds_no_5xx_and_no_schema_violation(champion_home):
    examples = real_examples(scheduled_flights(champion_home))
    counting = CountingApp(make_app(champion_home))
    with served(counting) as url:
        result = run_fuzz(url, examples, fuzz_config())
    table = status_table(counting.counts)
    print(f"\nschemathesis, seed {SEED}, {result.seconds:.0f} s, phases {result.phases}\n{table}")
    assert not result.failures, "\n".join([table, *result.failures[:20]])
    statuses = collections.Counter()
    for (_, path, status), n in counting.counts.items():
        if path != "/openapi.json":
            statuses[status] += n
    assert not [s for s in statuses if s >= 500], table
    # The run reached what it is meant to: every real flight scored, bad bodies and other methods refused.
    for path, bodies in examples.items():
        assert counting.counts[("POST", path, 200)] >= len(bodies), table
    assert statuses[422] >= 800 and statuses[405] >= 10 and statuses[415] >= 2, table
    assert result.phases.get("coverage") == "success" and result.phases.get("fuzzing") == "success", (
        result.phases
    )
