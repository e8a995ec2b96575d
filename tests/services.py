"""The machine services some tests talk to, and what a test does when one is not there.

On a laptop without PostgreSQL, Redis or RabbitMQ those tests skip with the reason (`make test` lists
the skips); with MLOPS_REQUIRE_SERVICES=1 (CI sets it) a missing service fails them instead, so CI can
never pass by skipping.
"""

from __future__ import annotations

import os
import socket

import pytest

REQUIRE_ENV = "MLOPS_REQUIRE_SERVICES"
SERVICES = {
    "postgresql": ("127.0.0.1", 5432),
    "redis": ("127.0.0.1", 6379),
    "rabbitmq": ("127.0.0.1", 5672),
}


def service_problem(name: str, timeout: float = 1.0) -> str | None:
    """Why the service cannot be reached, or None when it accepts a connection."""
    host, port = SERVICES[name]
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as error:
        return f"this test needs {name} at {host}:{port}, which does not answer ({error})"


def require_service(name: str) -> None:
    """Skip the calling test when the service is absent, or fail it when MLOPS_REQUIRE_SERVICES=1."""
    problem = service_problem(name)
    if problem is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{problem}; {REQUIRE_ENV}=1 does not allow a skip", pytrace=False)
    pytest.skip(problem)
