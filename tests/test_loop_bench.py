"""bench/loop_bench.py's replay on three real weeks: a small model budget, rules that make the loop act."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from tests.conftest import TRAINING_WINDOW


@pytest.fixture(scope="module")
def bench_home(training_set_home: Path, tmp_path_factory) -> Path:
    """The warehouse and feature lake of TRAINING_WINDOW, in a home of its own (the bench applies its
    own Feast project there)."""
    home = tmp_path_factory.mktemp("loop_bench_home")
    shutil.copy(training_set_home / "warehouse.duckdb", home / "warehouse.duckdb")
    shutil.copytree(training_set_home / "lake" / "features", home / "lake" / "features")
    return home


def test_replay_serves_every_day_with_three_policies_and_the_loop_retrains(bench_home: Path):
    from bench import loop_bench
    from mlops_assets.ml.boosting import GRID
    from mlops_assets.resources.retraining_policy import RetrainingPolicy

    data = loop_bench.Data(bench_home, "flight_delay_v2")
    budget = loop_bench.Budget(holdout_days=2, valid_days=2, calibration_days=2, grid=(GRID[0],))
    # Eager rules on a short window: every day drifts, three days of cooldown, a gate that passes.
    policy = RetrainingPolicy(drift_share=0.0, drift_days=1, cooldown_days=3, floor_days=5, window_days=8)
    rules = loop_bench.Rules("test", policy, min_auc_gain=-1.0, ece_tolerance=1.0)
    first, last = dt.date(2013, 1, 11), dt.date.fromisoformat(TRAINING_WINDOW[1])
    result = loop_bench.replay(
        data, first, last, rules, budget, ("2013-01-01", "2013-01-10"), cache=None, oracle_every=4,
        oracle_days=8,
    )  # fmt: skip

    scores = result.scores
    assert sorted(scores["day"].unique()) == [first + dt.timedelta(days=i) for i in range(11)]
    assert scores[list(loop_bench.POLICIES)].notna().all().all()
    rows = loop_bench.month_table(result)
    assert [r["month"] for r in rows] == ["2013-01"]
    assert set(rows[0]) == {
        "month",
        "flights",
        *loop_bench.POLICIES,
        *(f"{p}_daily" for p in loop_bench.POLICIES),
    }
    assert rows[0]["flights"] == scores["label_late"].notna().sum()
    assert all(0.5 < rows[0][p] < 0.85 for p in loop_bench.POLICIES)  # skill, and no leakage

    # The loop retrained from its own records and served the new versions from the next day.
    assert result.events and all(e.passed for e in result.events)
    assert result.events[0].trigger == "sensor" and result.events[0].reason.startswith("drift")
    first_retrain = dt.date.fromisoformat(result.events[0].day)
    assert first_retrain == first + dt.timedelta(days=policy.cooldown_days - 1)  # 3 new days after 01-10
    loop_windows = dict(zip(sorted(scores["day"].unique()), result.versions["loop"], strict=True))
    assert loop_windows[first_retrain] == "2013-01-01..2013-01-10"
    assert loop_windows[first_retrain + dt.timedelta(days=1)] == f"2013-01-06..{first_retrain}"
    # Three different models on the last day: the champion of January 1-10, the loop's, the oracle's.
    last_day = scores[scores["day"] == last]
    for a, b in (("loop", "never"), ("oracle", "never"), ("loop", "oracle")):
        assert (last_day[a] - last_day[b]).abs().max() > 1e-3, (a, b)
    assert result.versions["oracle"][-1] == "2013-01-11..2013-01-18"  # retrained on 01-19: 8 days back
    assert all(line.startswith("|") for line in loop_bench.format_table(rows))
