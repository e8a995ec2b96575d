"""`mlops replay` as a paced feed: steps of several days, and `--when-idle` waiting for the graph."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.cli import main, wait_until_idle
from tests.conftest import started_run


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    return tmp_path


def test_steps_of_several_days_land_in_order(home, capsys):
    assert (
        main(
            ["replay", "--start", "2013-01-01", "--end", "2013-01-07", "--every", "0", "--days-per-step", "3"]
        )
        == 0
    )
    landed = [line.split(" landed ")[1].split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert landed == ["2013-01-01..2013-01-03", "2013-01-04..2013-01-06", "2013-01-07"]
    days = sorted(p.stem for p in (home / "landing" / "flights").glob("*.csv"))
    assert days == [f"2013-01-0{d}" for d in range(1, 8)]
    assert (home / "landing" / "reference" / "airlines.csv").exists()  # with the first step only


def test_when_idle_waits_for_the_running_run_then_for_the_quiet_time(home):
    with dg.DagsterInstance.get() as instance:
        run = started_run(instance, "g")
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
        finished = []

        def finish_later() -> None:
            time.sleep(2.0)
            instance.report_run_canceled(instance.get_run_by_id(run.run_id))
            finished.append(time.monotonic())

        threading.Thread(target=finish_later).start()
        started = time.monotonic()
        wait_until_idle(quiet_s=1.0, poll_s=0.2)
        returned = time.monotonic()
    assert finished, "returned while the run was still going"
    # then the quiet time, counted from the last poll that saw the run (at most one poll before its end)
    assert returned - finished[0] >= 1.0 - 0.2
    assert returned - started >= 2.0 + 1.0 - 0.2


def test_the_demos_arguments_replay_the_whole_window_at_once(home, capsys):
    """`mlops demo` replays through cmd_replay with its own arguments (no pacing options)."""
    import argparse
    import datetime as dt

    from mlops_assets.cli import cmd_replay

    demo_args = argparse.Namespace(start=dt.date(2013, 1, 1), end=dt.date(2013, 1, 3), no_reference=False)
    assert cmd_replay(demo_args) == 0
    assert "replayed 3 day(s)" in capsys.readouterr().out
    assert len(list((home / "landing" / "weather").glob("*.csv"))) == 3
