"""The retraining rules on their own: triggers, cooldown, windows and run keys (no services needed)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from mlops_assets.monitoring.retraining import Decision, decide, new_window
from mlops_assets.resources.retraining_policy import RetrainingPolicy
from mlops_assets.training.registry import ChampionInfo

CHAMPION = ChampionInfo(
    version="3",
    model_uri="models:/flight_delay/3",
    run_id="r",
    decision_threshold=0.3,
    training_set_key="features/training_set/2013-01-01_2013-03-31.parquet",
    training_window="2013-01-01..2013-03-31",
    holdout_roc_auc=0.72,
)
POLICY = RetrainingPolicy(drift_share=0.3, drift_days=3, auc_drop=0.05, performance_days=3, cooldown_days=14)


def drift(day: str, share: float) -> dict:
    return {"day": day, "drift_share": share}


def quality(day: str, auc: float) -> dict:
    return {"day": day, "metrics": {"roc_auc": auc}}


def days(start: str, n: int) -> list[str]:
    first = dt.date.fromisoformat(start)
    return [(first + dt.timedelta(days=i)).isoformat() for i in range(n)]


def test_drift_on_consecutive_latest_days_triggers_on_a_window_ending_at_the_latest_day():
    records = [drift(d, 0.5) for d in days("2013-04-10", 6)]
    decision = decide(POLICY, CHAMPION, dt.date(2013, 4, 20), records, [], None)
    assert decision.retrain and decision.reason.startswith("drift")
    assert decision.window == ("2013-01-01", "2013-04-20")  # a year, capped at the first data day
    assert decision.run_key == "retrain:champion-v3:2013-01-01..2013-04-20"
    request = decision.run_request()
    assert request.run_config["ops"]["features__training_set"]["config"] == {
        "start_date": "2013-01-01",
        "end_date": "2013-04-20",
    }


def test_one_calm_day_among_the_latest_resets_the_drift_trigger():
    records = [drift(d, 0.5) for d in days("2013-04-10", 5)] + [drift("2013-04-15", 0.1)]
    assert not decide(POLICY, CHAMPION, dt.date(2013, 4, 20), records, [], None).retrain


def test_days_inside_the_champions_own_window_do_not_count():
    records = [drift(d, 0.9) for d in days("2013-03-25", 7)]  # up to 03-31: its training window
    decision = decide(POLICY, CHAMPION, dt.date(2013, 4, 20), records, [], None)
    assert not decision.retrain and "no trigger" in decision.reason


def test_cooldown_counts_new_data_days_since_the_champion_and_since_the_last_request():
    records = [drift(d, 0.9) for d in days("2013-04-01", 40)]
    early = decide(POLICY, CHAMPION, dt.date(2013, 4, 10), records, [], None)
    assert not early.retrain and early.reason.startswith("cooldown")
    after_request = decide(POLICY, CHAMPION, dt.date(2013, 4, 25), records, [], dt.date(2013, 4, 20))
    assert not after_request.retrain and "5 of 14" in after_request.reason
    later = decide(POLICY, CHAMPION, dt.date(2013, 5, 4), records, [], dt.date(2013, 4, 20))
    assert later.retrain and later.window[1] == "2013-05-04"


def test_a_drop_in_measured_roc_auc_triggers_without_drift():
    calm = [drift(d, 0.0) for d in days("2013-04-15", 6)]
    good = [quality(d, 0.70) for d in days("2013-04-15", 6)]
    assert not decide(POLICY, CHAMPION, dt.date(2013, 4, 20), calm, good, None).retrain
    bad = good[:3] + [quality(d, 0.64) for d in days("2013-04-18", 3)]
    decision = decide(POLICY, CHAMPION, dt.date(2013, 4, 20), calm, bad, None)
    assert decision.retrain and decision.reason.startswith("performance")


def test_schedule_floor_retrains_a_stale_champion_whatever_the_drift():
    decision = decide(POLICY, CHAMPION, dt.date(2013, 4, 30), [], [], None, floor=True)
    assert decision.retrain and decision.reason.startswith("schedule")
    fresh = decide(POLICY, CHAMPION, dt.date(2013, 4, 20), [], [], None, floor=True)
    assert not fresh.retrain  # 20 days < floor_days 28


def test_no_champion_and_no_data_never_retrain():
    assert not decide(POLICY, None, dt.date(2013, 4, 20), [], [], None).retrain
    assert not decide(POLICY, CHAMPION, None, [], [], None).retrain


def test_window_is_clipped_to_the_first_day_of_the_data():
    assert new_window(dt.date(2013, 2, 1), 90) == ("2013-01-01", "2013-02-01")
    # The default year: capped while the data is younger than a year, then it moves with the data.
    assert new_window(dt.date(2013, 12, 20), POLICY.window_days) == ("2013-01-01", "2013-12-20")
    assert new_window(dt.date(2014, 6, 30), POLICY.window_days) == ("2013-07-01", "2014-06-30")
    assert isinstance(Decision(True, "x", ("a", "b"), "k").run_request(), dg.RunRequest)


def test_the_sensor_waits_while_any_run_is_in_progress():
    """A retraining must not start while the graph is still writing the days of its window."""
    from mlops_assets.monitoring.retraining import busy_reason
    from tests.conftest import started_run

    with dg.DagsterInstance.ephemeral() as instance:
        assert busy_reason(instance) is None
        instance.create_run_for_job(dg.GraphDefinition("created").to_job(), run_id=None)
        assert busy_reason(instance) is None  # created, not submitted: nothing runs
        run = started_run(instance, "daily")
        assert "the daily graph is running" in busy_reason(instance)
        instance.report_run_canceled(instance.get_run_by_id(run.run_id))
        assert busy_reason(instance) is None
