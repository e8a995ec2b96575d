"""A test that needs a machine service skips without it on a laptop and fails without it in CI."""

from __future__ import annotations

import socket

import pytest

from tests import services


@pytest.fixture
def absent_service(monkeypatch: pytest.MonkeyPatch) -> str:
    with socket.socket() as probe:  # a port nothing listens on: bound, then released
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setitem(services.SERVICES, "nothing", ("127.0.0.1", port))
    return "nothing"


def test_a_missing_service_skips_with_its_address(absent_service, monkeypatch):
    monkeypatch.delenv(services.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"needs nothing at 127\.0\.0\.1:\d+"):
        services.require_service(absent_service)


def test_a_missing_service_fails_when_services_are_required(absent_service, monkeypatch):
    monkeypatch.setenv(services.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="MLOPS_REQUIRE_SERVICES=1 does not allow a skip"):
        services.require_service(absent_service)


@pytest.mark.parametrize("name", sorted(services.SERVICES))
def test_the_machine_services_answer_in_ci(name):
    """In CI every service the suite needs is there (a laptop skips, naming what is missing)."""
    services.require_service(name)
