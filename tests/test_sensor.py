"""The landing-zone sensor: new file, same file again, changed file, temporary file, restart.

The restart test runs the daemon's own sensor iteration against an on-disk instance twice, each time
with a fresh code server, so the cursor it relies on is the one Dagster persisted.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.defs.ingestion.sensors import build_landing_zone_sensor
from mlops_assets.ingestion.landing import FILE_TAG, SENSOR_NAME, VERSION_TAG
from mlops_assets.lib.calendar import daily_partitions


@pytest.fixture
def sensor() -> dg.SensorDefinition:
    return build_landing_zone_sensor(set(daily_partitions().get_partition_keys()))


def tick(sensor, landing, cursor: str | None = None):
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"landing_zone": landing}
        )
        return sensor(context), context


def test_new_files_become_runs_keyed_by_path_and_version_one_per_day(sensor, replayed):
    landing, _ = replayed
    result, _ = tick(sensor, landing)
    by_file = {r.tags[FILE_TAG]: r for r in result.run_requests}
    assert set(by_file) == {
        "reference/airlines.csv", "reference/airports.csv", "reference/planes.csv",
        *(f"flights/2013-01-0{d}.csv,weather/2013-01-0{d}.csv" for d in (1, 2, 3)),
    }  # fmt: skip
    day = by_file["flights/2013-01-02.csv,weather/2013-01-02.csv"]
    flights, weather = (landing.head(f"{t}/2013-01-02.csv").version for t in ("flights", "weather"))
    assert day.run_key == f"flights/2013-01-02.csv@{flights}+weather/2013-01-02.csv@{weather}"
    assert day.tags[VERSION_TAG] == f"{flights},{weather}"
    assert day.partition_key == "2013-01-02"
    assert day.asset_selection == [dg.AssetKey(["raw", "flights"]), dg.AssetKey(["raw", "weather"])]
    # Reference tables come first: flights are validated against the carriers they hold.
    assert [r.tags[FILE_TAG] for r in result.run_requests][:3] == [
        "reference/airlines.csv",
        "reference/airports.csv",
        "reference/planes.csv",
    ]
    assert [r.partition_key for r in result.run_requests][3:] == ["2013-01-01", "2013-01-02", "2013-01-03"]
    assert (
        json.loads(result.cursor)["weather/2013-01-03.csv"] == landing.head("weather/2013-01-03.csv").version
    )


def test_same_files_again_request_nothing(sensor, replayed):
    landing, _ = replayed
    first, _ = tick(sensor, landing)
    second, _ = tick(sensor, landing, cursor=first.cursor)
    assert isinstance(second, dg.SkipReason)
    assert "no new files among 9" in second.skip_message


def test_changed_file_reingests_only_its_partition(sensor, replayed):
    landing, _ = replayed
    first, _ = tick(sensor, landing)
    body = landing.read_bytes("weather/2013-01-02.csv")
    landing.write_bytes(
        "weather/2013-01-02.csv", body.replace(b"\n", b"\n", 1) + b""
    )  # same bytes, new write
    landing.write_bytes("weather/2013-01-02.csv", body.rstrip(b"\n").rsplit(b"\n", 1)[0] + b"\n")  # corrected
    second, _ = tick(sensor, landing, cursor=first.cursor)
    (request,) = second.run_requests
    assert request.partition_key == "2013-01-02" and request.asset_selection == [
        dg.AssetKey(["raw", "weather"])
    ]
    assert request.run_key == f"weather/2013-01-02.csv@{landing.head('weather/2013-01-02.csv').version}"
    assert request.run_key not in {r.run_key for r in first.run_requests}


def test_files_still_being_written_and_unknown_files_are_ignored(sensor, stores):
    landing, _ = stores
    root = Path(landing.root)
    (root / "flights").mkdir(parents=True)
    (root / "flights" / ".2013-01-04.csv.tmp-1f2e").write_text("year,month\n")
    (root / "flights" / "2013-01-04.csv.part").write_text("year,month\n")
    (root / "flights" / "_COPYING_2013-01-04.csv").write_text("year,month\n")
    (root / "flights" / "2014-01-01.csv").write_text("year,month\n")  # outside the partitions
    (root / "notes.txt").write_text("hello")
    result, _ = tick(sensor, landing)
    assert isinstance(result, dg.SkipReason)
    landing.write_bytes("flights/2013-01-04.csv", b"year,month\n")  # the finished file
    result, _ = tick(sensor, landing)
    assert [r.partition_key for r in result.run_requests] == ["2013-01-04"]


@pytest.mark.slow
def test_cursor_survives_a_daemon_restart(replayed, tmp_path, monkeypatch):
    from dagster._core.instance_for_test import instance_for_test
    from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.sensor import execute_sensor_iteration

    landing, _ = replayed
    # The code server the daemon starts builds its own resources from the profile settings.
    monkeypatch.setenv("MLOPS_HOME", str(Path(landing.root).parent))
    target = ModuleTarget(
        module_name="mlops_assets.definitions", attribute="defs",
        working_directory=str(Path(__file__).parents[1]), location_name="mlops_assets",
    )  # fmt: skip
    overrides = {"run_launcher": {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"}}
    logger = logging.getLogger("sensor-test")

    clock = [time.time()]

    def daemon_lifetime(instance) -> str:
        """One daemon start: a fresh code server, one sensor iteration; returns that tick's status."""
        clock[0] += 60  # past the sensor's minimum interval, so the daemon really evaluates it
        with freeze_time(clock[0]), create_test_daemon_workspace_context(target, instance) as context:
            list(execute_sensor_iteration(context, logger, None, None))
        (state,) = [s for s in instance.all_instigator_state() if s.name == SENSOR_NAME]
        latest = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)[0]
        return latest.status.value

    (tmp_path / "dagster_home").mkdir()
    with instance_for_test(overrides=overrides, temp_dir=str(tmp_path / "dagster_home")) as instance:
        assert daemon_lifetime(instance) == "SUCCESS"
        first_runs = instance.get_runs()
        assert len(first_runs) == 6  # three reference tables, three days
        assert {r.tags[FILE_TAG] for r in first_runs} >= {"flights/2013-01-03.csv,weather/2013-01-03.csv"}

        # A restarted daemon: new code server, the cursor read back from the instance.
        assert daemon_lifetime(instance) == "SKIPPED"
        assert len(instance.get_runs()) == 6
        (state,) = [s for s in instance.all_instigator_state() if s.name == SENSOR_NAME]
        assert "flights/2013-01-03.csv" in json.loads(state.instigator_data.cursor)

        body = landing.read_bytes("flights/2013-01-03.csv")
        landing.write_bytes("flights/2013-01-03.csv", body.rstrip(b"\n").rsplit(b"\n", 1)[0] + b"\n")
        assert daemon_lifetime(instance) == "SUCCESS"
        runs = instance.get_runs()
        assert len(runs) == 7
        assert runs[0].tags[FILE_TAG] == "flights/2013-01-03.csv"
        assert runs[0].tags["dagster/partition"] == "2013-01-03"


def test_a_backlog_becomes_ranged_runs_of_consecutive_days(sensor, stores):
    """40 days delivered at once (and one day further on): ranged runs of at most a month, both tables
    of a range in one run, a lone day keeps its day run, and a re-delivered file inside a range re-keys
    that range's run only."""
    import datetime as dt

    from mlops_assets.ingestion.landing import MAX_RANGE_DAYS
    from mlops_assets.lib.calendar import RANGE_END_TAG, RANGE_START_TAG
    from mlops_assets.replay import replay

    landing, _ = stores
    replay(landing, dt.date(2013, 1, 1), dt.date(2013, 2, 9), include_reference=False)
    replay(landing, dt.date(2013, 2, 20), dt.date(2013, 2, 20), include_reference=False)
    result, _ = tick(sensor, landing)
    spans = [
        (r.tags.get(RANGE_START_TAG), r.tags.get(RANGE_END_TAG), r.partition_key) for r in result.run_requests
    ]
    assert spans == [
        ("2013-01-01", "2013-01-31", None),
        ("2013-02-01", "2013-02-09", None),
        (None, None, "2013-02-20"),
    ]
    assert MAX_RANGE_DAYS == 31
    both = [dg.AssetKey(["raw", "flights"]), dg.AssetKey(["raw", "weather"])]
    assert all(r.asset_selection == both for r in result.run_requests)
    ranged = result.run_requests[1]
    flights, weather = ranged.run_key.split("+")
    assert flights.startswith("flights/2013-02-01..2013-02-09@") and weather.startswith(
        "weather/2013-02-01.."
    )
    assert (
        ranged.tags[FILE_TAG]
        == "flights/2013-02-01..2013-02-09.csv (9 files),weather/2013-02-01..2013-02-09.csv (9 files)"
    )
    assert len(json.loads(result.cursor)) == 82  # every file is seen, whichever run ingests it

    # The same 40 days delivered again with one file changed: a new key for the range that holds it only.
    again, _ = tick(sensor, landing)
    body = landing.read_bytes("flights/2013-02-03.csv")
    landing.write_bytes("flights/2013-02-03.csv", body.rstrip(b"\n").rsplit(b"\n", 1)[0] + b"\n")
    changed, _ = tick(sensor, landing)
    keys = {r.run_key for r in again.run_requests}
    (moved,) = {r.run_key for r in changed.run_requests} - keys
    assert moved.startswith("flights/2013-02-01..2013-02-09@") and moved.split("+")[1] == weather


def test_a_ranged_run_ingests_every_day_of_its_range(sensor, stores):
    """The requests, executed as the daemon would (selection and tags): the reference tables' runs, then
    the ranged run, which writes each day of both tables."""
    import datetime as dt

    from mlops_assets.replay import replay
    from tests.conftest import raw_assets

    landing, lake = stores
    replay(landing, dt.date(2013, 1, 1), dt.date(2013, 1, 9))
    result, _ = tick(sensor, landing)
    *reference, ranged = result.run_requests
    assert len(reference) == 3 and ranged.partition_key is None
    with dg.DagsterInstance.ephemeral() as instance:
        for request in result.run_requests:
            outcome = dg.materialize(
                raw_assets(),
                selection=request.asset_selection,
                instance=instance,
                tags=request.tags,
                resources={"landing_zone": landing, "lake": lake},
            )
            assert outcome.success
        for table in ("flights", "weather"):
            days = {m.partition for m in outcome.asset_materializations_for_node(f"raw__{table}")}
            assert days == {f"2013-01-0{d}" for d in range(1, 10)}
            assert all(lake.exists(f"raw/{table}/2013-01-0{d}.parquet") for d in range(1, 10))


@pytest.mark.slow
def test_the_demo_marks_landed_files_ingested_and_leaves_the_sensor_running(replayed, tmp_path, monkeypatch):
    """`make demo` ingests through the CLI, then sets the sensor's cursor for `make ui`. Dagster stores a
    sensor whose cursor is set before it ever ran as STOPPED: the sensor must still be running after."""
    from mlops_assets.demo import mark_landed_files_ingested
    from mlops_assets.ingestion.landing import cursor_of

    landing, _ = replayed
    monkeypatch.setenv("MLOPS_HOME", str(Path(landing.root).parent))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    mark_landed_files_ingested()
    mark_landed_files_ingested()  # a second demo on the same home
    with dg.DagsterInstance.get() as instance:
        (state,) = [s for s in instance.all_instigator_state() if s.name == SENSOR_NAME]
        assert state.status.value == "RUNNING"
        assert json.loads(state.instigator_data.cursor) == json.loads(cursor_of(landing))


def test_links_in_the_landing_zone_are_listed_as_refused_and_never_followed(sensor, replayed, tmp_path):
    """A link to a file outside, a link inside the zone and a linked folder: the listing describes each
    link by itself (target, no size), never what it points to; a link with a landing file's name gets
    its run (whose asset refuses it, see test_ingestion_deliveries), a linked folder is not entered."""
    import os

    landing, _ = replayed
    root, outside = Path(landing.root), tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret.csv").write_bytes(landing.read_bytes("flights/2013-01-02.csv"))
    (outside / "folder" / "2013-01-06.csv").write_bytes(landing.read_bytes("flights/2013-01-02.csv"))
    os.symlink(outside / "secret.csv", root / "flights" / "2013-01-04.csv")
    os.symlink(root / "weather" / "2013-01-01.csv", root / "weather" / "2013-01-05.csv")
    os.symlink(outside / "folder", root / "mirror", target_is_directory=True)

    listed = {o.key: o for o in landing.list_objects()}
    links = {k: (o.refused is not None, o.link_target, o.size) for k, o in listed.items() if o.refused}
    assert links == {
        "flights/2013-01-04.csv": (True, str(outside / "secret.csv"), 0),
        "weather/2013-01-05.csv": (True, str(root / "weather" / "2013-01-01.csv"), 0),
        "mirror": (True, str(outside / "folder"), 0),
    }
    assert not any(k.startswith("mirror/") for k in listed)  # the linked folder is not entered
    assert landing.list_objects("mirror")[0].refused  # not through a prefix either
    result, _ = tick(sensor, landing)
    by_day = {r.partition_key: r for r in result.run_requests if r.partition_key}
    assert (
        by_day["2013-01-04"].run_key == f"flights/2013-01-04.csv@{listed['flights/2013-01-04.csv'].version}"
    )
    assert listed["flights/2013-01-04.csv"].version.startswith("link-")
    assert by_day["2013-01-05"].asset_selection == [dg.AssetKey(["raw", "weather"])]
    assert "2013-01-06" not in by_day
