"""The loop's worth: April to December served by the retraining loop, by the Jan-Mar champion never
retrained, and by an oracle that retrains at the start of every month, replayed in data time.

    .venv/bin/python bench/loop_bench.py                               # 2013-04-01..2013-12-31
    .venv/bin/python bench/loop_bench.py --ece-acceptable 0.1          # the gate's rules with one change
    .venv/bin/python bench/loop_bench.py --cooldown-days 7             # the sensor's, with one change
    .venv/bin/python bench/loop_bench.py --window-days 365             # a longer moving training window
    .venv/bin/python bench/loop_bench.py --start 2013-04-01 --months 2 # a shorter replay

Running the Dagster graph day by day for nine months would take days on 2 cores, so this is a harness
around the functions the graph itself calls:

- data: the real pipeline (replay, raw assets with their checks, dbt) for 2013 into --home, the feature
  tables of `features/flight_features` computed by their DuckDB implementation (tested equal to the
  Spark job) in the asset's layout, Feast applied over them; built once and reused.
- serving: each day's flights (the schedule view's file) joined point-in-time by Feast at their prediction
  time and scored with `serving.batch.score_day`, as `predictions/batch_predictions` does.
- monitoring: each day's drift record from Evidently's tests (`monitoring.reports.drift_summary`) against
  the champion's reference sample (`monitoring.drift.reference_sample`, 5,000 rows), and the day's
  ROC-AUC (`ml.metrics.classification_metrics`), as the two monitoring assets record them.
- the loop: `monitoring.retraining.decide` every data day with those records (the sensor), and on
  Saturdays with floor=True (the weekly schedule's tick, which sees Saturday as the latest day); a
  request trains on its window as `retrain_model` does (`features.training_set.build_training_set` over
  `entity_frame`, the split of `TrainingPlan`, the trees' grid of `models/baselines`,
  `training.challenger.fit_challenger_trees`, the F1 threshold), and `training.registry.gate` judges the
  candidate against the champion on the candidate's holdout; a pass serves from the next day.
- the oracle: the same training on the window_days (90 by default) before each month's first day, no gate.

Not exercised: Ray Tune (the default family, the trees, does not use it), the logistic-regression
baseline (the gate's floor only when there is no champion), MLflow and the Dagster event log. A model is
cached under --home by its window, rules-independent, so a second run with other rules retrains only
what differs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

DEFAULT_HOME = Path(tempfile.gettempdir()) / "loopbench-home"
DATA_FIRST, DATA_LAST = dt.date(2013, 1, 1), dt.date(2013, 12, 31)
CHAMPION_WINDOW = ("2013-01-01", "2013-03-31")  # make demo's second champion: January-March
REFERENCE_ROWS = 5000  # MonitoringConfig.reference_rows
POLICIES = ("loop", "never", "oracle")
ORACLE_WINDOW_DAYS = 90  # the yardstick, whatever window the loop's rules use


def log(message: str) -> None:
    print(f"[loop-bench] {message}", flush=True)


# ---------------------------------------------------------------------------------------------------
# Data: the real pipeline into a home, features by DuckDB, Feast over them.


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def prepare_warehouse(home: Path, first: dt.date, last: dt.date) -> Path:
    """Replay, raw assets (their checks included) and dbt for first..last into `home`; reused when a
    previous run built the same window."""
    warehouse = home / "warehouse.duckdb"
    marker = home / ".loop-bench-warehouse"
    if marker.exists() and warehouse.exists() and marker.read_text() == f"{first}..{last}":
        return warehouse
    from bench.warehouse import materialize_window
    from mlops_assets.replay import replay
    from mlops_assets.resources.storage import LocalObjectStore

    started = time.perf_counter()
    env = {
        "MLOPS_HOME": str(home),
        "DBT_TARGET_PATH": str(home / "dbt-target"),
        "GX_ANALYTICS_ENABLED": "false",
    }
    with environment(**env):
        landing = LocalObjectStore(root=str(home / "landing"))
        lake = LocalObjectStore(root=str(home / "lake"))
        replay(landing, first, last)
        materialize_window(landing, lake, first, last)
    marker.write_text(f"{first}..{last}")
    log(f"warehouse of {first}..{last} (replay, raw assets, dbt) in {time.perf_counter() - started:.0f} s")
    return warehouse


def write_feature_lake(home: Path, warehouse: Path, first: dt.date, last: dt.date) -> None:
    """The tables of `features/flight_features` for first..last in its layout,
    `lake/features/<table>/<day>.parquet`, from the DuckDB implementation (one pass for the window)."""
    import duckdb

    from mlops_assets.features import duckdb_features
    from mlops_assets.features.flight_features import DAY_COLUMN
    from mlops_assets.features.inputs import read_warehouse_inputs

    marker = home / ".loop-bench-features"
    if marker.exists() and marker.read_text() == f"{first}..{last}":
        return
    started = time.perf_counter()
    flights, weather = read_warehouse_inputs(warehouse, first, last)
    root = home / "lake" / "features"
    root.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        # One thread: one file per day folder, and the shared cores stay free for the rest.
        con.execute("set TimeZone = 'UTC'; set threads = 1")
        con.register("flights", flights)
        con.register("weather", weather)
        names = duckdb_features.build_features(con, first, last)
        for table, name in names.items():
            staging = root / f".{table}-staging"
            con.execute(
                f"copy (select * from {name}) to '{staging}' "
                f"(format parquet, partition_by ({DAY_COLUMN}), overwrite)"
            )
            target = root / table
            target.mkdir(parents=True, exist_ok=True)
            for folder in staging.iterdir():
                day = folder.name.split("=", 1)[1]
                (file,) = folder.glob("*.parquet")
                file.replace(target / f"{day}.parquet")
                folder.rmdir()
            staging.rmdir()
    marker.write_text(f"{first}..{last}")
    log(f"feature tables of {first}..{last} (DuckDB) in {time.perf_counter() - started:.0f} s")


@dataclass
class Data:
    """Where the replay reads from: the home's warehouse, feature lake and Feast repository."""

    home: Path
    feature_service: str
    feast: Any = None

    def __post_init__(self) -> None:
        from mlops_assets.resources.feature_store import FeastResource

        self.feast = FeastResource(profile="local", home=str(self.home), project="loop_bench")
        self.feast.apply()

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    def training_set(self, start: str, end: str):
        """What `features/training_set` builds for the window."""
        from mlops_assets.features.training_set import build_training_set, entity_frame

        frame, _ = build_training_set(
            self.feast, entity_frame(self.warehouse, start, end), self.feature_service
        )
        return frame

    def served(self, first: dt.date, last: dt.date):
        """Every scheduled flight of first..last with the features `predictions/batch_predictions` joins
        for it (one ranged run), its local day and its outcome (None: cancelled or diverted)."""
        import pandas as pd

        from mlops_assets.features.training_set import ENTITY_COLUMNS
        from mlops_assets.lib.calendar import days_between
        from mlops_assets.resources.storage import LocalObjectStore
        from mlops_assets.serving.batch import scheduled_flights

        lake = LocalObjectStore(root=str(self.home / "lake"))
        days = days_between(first, last)
        flights = pd.concat(
            [scheduled_flights(lake, day).assign(_day=day) for day in days], ignore_index=True
        )
        features = self.feast.historical_features(
            flights[[*ENTITY_COLUMNS, "event_timestamp"]], self.feature_service
        )
        labels = self._labels(first, last)
        return flights.merge(labels, on="flight_id", how="left", validate="one_to_one"), features

    def _labels(self, first: dt.date, last: dt.date):
        from mlops_assets.resources.warehouse import as_warehouse

        table = as_warehouse(self.warehouse).read_table(
            "marts.fct_flights", ["flight_id", "label_late"], "flight_date", first, last
        )
        return table.to_pandas()


# ---------------------------------------------------------------------------------------------------
# Training as `retrain_model` does it (trees, the default family), cached by window.


@dataclass(frozen=True)
class Budget:
    """What a retraining spends: TrainingPlan's split and seed, the trees' grid of models/baselines and
    the challenger's calibration days (all the demo's defaults unless a test makes them smaller)."""

    holdout_days: int = 14
    valid_days: int = 14
    seed: int = 0
    calibration_days: int = 7
    grid: tuple[Any, ...] | None = None  # None: boosting.GRID

    def key(self) -> str:
        grid = [p.to_dict() for p in self.grid] if self.grid else "GRID"
        return json.dumps([self.holdout_days, self.valid_days, self.seed, self.calibration_days, grid])


@dataclass
class Model:
    """A trained version: what serving, the drift reference and the gate need of it."""

    window: tuple[str, str]
    bundle: Any  # boosting.BoostedModel
    decision_threshold: float
    holdout: Any  # the holdout's model inputs
    holdout_labels: Any
    holdout_metrics: dict[str, float]
    floor_metrics: dict[str, float]  # the trees baseline's, on the same holdout (the gate's floor)
    trees: dict[str, Any]
    reference: Any = None  # the drift reference sample, made when the version first serves
    seconds: float = 0.0

    def predict(self, inputs) -> Any:
        import pandas as pd

        return pd.Series(self.bundle.predict(inputs), index=inputs.index, name="probability_late")


def train(data: Data, window: tuple[str, str], budget: Budget, cache: Path | None) -> Model:
    """The retraining run's training for `window`: training set, split, the trees' grid on the training
    days (models/baselines), the chosen point refitted and calibrated (models/flight_delay_model), its
    decision threshold, its holdout figures (models/model_evaluation)."""
    import joblib

    path = None
    if cache is not None:
        digest = hashlib.sha256(f"{window}{budget.key()}{data.feature_service}".encode()).hexdigest()[:16]
        path = cache / f"{window[0]}_{window[1]}_{digest}.joblib"
        if path.exists():
            cached = joblib.load(path)
            # Kept as a dict: a pickled Model would name the module that ran (`__main__` for the script).
            return Model(**cached) if isinstance(cached, dict) else cached
    from mlops_assets.features.training_set import TrainingSetIdentity, canonical_hash
    from mlops_assets.ml.baselines import fit_baseline, predict_baseline
    from mlops_assets.ml.data import LABEL
    from mlops_assets.ml.metrics import classification_metrics, f1_threshold
    from mlops_assets.training.challenger import fit_challenger_trees
    from mlops_assets.training.data import model_input_frame, prepared_arrays, split_training_data
    from mlops_assets.training.evaluation import holdout_inputs

    started = time.perf_counter()
    frame = data.training_set(*window)
    identity = TrainingSetIdentity(
        key=f"loop_bench/{window[0]}_{window[1]}", sha256=canonical_hash(frame), window=window,
        feature_service=data.feature_service,
    )  # fmt: skip
    training = split_training_data(frame, identity, budget.holdout_days, budget.valid_days)
    columns = (training.categorical, training.numeric)
    parts = {
        name: model_input_frame(part, *columns).assign(**{LABEL: part[LABEL].to_numpy()})
        for name, part in (("train", training.split.train), ("valid", training.split.valid))
    }
    pipeline, grid = fit_baseline(
        "hist_gradient_boosting", parts["train"], parts["valid"], *columns, LABEL, budget.seed, budget.grid
    )
    trees = grid[0]  # best first: the point models/flight_delay_model refits
    boosted = fit_challenger_trees(training, trees, budget.calibration_days, budget.seed)
    threshold = f1_threshold(prepared_arrays(training)[1]["valid"][2], boosted.valid_probabilities)
    inputs, labels = holdout_inputs(training)
    model = Model(
        window=window,
        bundle=boosted.model,
        decision_threshold=threshold,
        holdout=inputs,
        holdout_labels=labels,
        holdout_metrics=classification_metrics(labels, boosted.model.predict(inputs)),
        floor_metrics=classification_metrics(labels, predict_baseline(pipeline, inputs)),
        trees=trees,
        seconds=time.perf_counter() - started,
    )
    model.reference = _reference(model, frame)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(vars(model), path)
    return model


def _reference(model: Model, training_set) -> Any:
    from mlops_assets.monitoring.drift import reference_sample

    return reference_sample(training_set, lambda inputs: model.predict(inputs).to_numpy(), REFERENCE_ROWS)


# ---------------------------------------------------------------------------------------------------
# The replay.


@dataclass(frozen=True)
class Rules:
    name: str
    retraining: Any  # RetrainingPolicy
    min_auc_gain: float
    ece_tolerance: float
    ece_acceptable: float = 0.0


def rules(ece_acceptable: float | None = None, **policy: Any) -> Rules:
    """The code's rules (RetrainingPolicy's and RegistryConfig's defaults), `ece_acceptable` and the
    policy's fields given replaced."""
    from mlops_assets.defs.training.registered_model import RegistryConfig
    from mlops_assets.resources.retraining_policy import RetrainingPolicy

    fields = RegistryConfig.model_fields
    acceptable = fields["ece_acceptable"].default if ece_acceptable is None else ece_acceptable
    changed = {**policy, **({"ece_acceptable": ece_acceptable} if ece_acceptable is not None else {})}
    name = ", ".join(["defaults", *(f"{k} {v}" for k, v in changed.items())])
    return Rules(
        name,
        RetrainingPolicy(**policy),
        fields["min_auc_gain"].default,
        fields["ece_tolerance"].default,
        acceptable,
    )


@dataclass
class Event:
    day: str
    trigger: str
    reason: str
    window: tuple[str, str]
    passed: bool
    gate: str
    candidate_auc: float
    champion_auc: float


@dataclass
class Loop:
    """The loop's registry and records: its champion, every drift and quality record, the sensor's
    cursor, the versions it registered."""

    rules: Rules
    champion: Model
    version: int = 1
    drift: list[dict] = field(default_factory=list)
    performance: list[dict] = field(default_factory=list)
    last_requested_end: dt.date | None = None
    events: list[Event] = field(default_factory=list)

    def info(self) -> Any:
        from mlops_assets.training.registry import ChampionInfo

        return ChampionInfo(
            version=str(self.version),
            model_uri=f"models:/flight_delay/{self.version}",
            run_id="",
            decision_threshold=self.champion.decision_threshold,
            training_set_key=None,
            training_window="..".join(self.champion.window),
            holdout_roc_auc=self.champion.holdout_metrics["roc_auc"],
        )


def gate_candidate(loop: Loop, candidate: Model) -> Any:
    """models/registered_model's decision: the candidate and the champion on the candidate's holdout."""
    from mlops_assets.ml.metrics import classification_metrics
    from mlops_assets.training.registry import gate

    champion = classification_metrics(
        candidate.holdout_labels, loop.champion.predict(candidate.holdout).to_numpy()
    )
    decision = gate(
        candidate.holdout_metrics,
        champion,
        candidate.floor_metrics,
        "hist_gradient_boosting",
        loop.rules.min_auc_gain,
        loop.rules.ece_tolerance,
        ece_acceptable=loop.rules.ece_acceptable,
    )
    return decision, champion


def retrain(loop: Loop, day: dt.date, decision: Any, trigger: str, trainer: Callable) -> None:
    candidate = trainer(decision.window)
    verdict, champion = gate_candidate(loop, candidate)
    loop.version += 1  # every candidate is registered; only a pass moves `champion`
    loop.events.append(
        Event(
            day=day.isoformat(),
            trigger=trigger,
            reason=decision.reason,
            window=decision.window,
            passed=verdict.passed,
            gate="passed" if verdict.passed else "; ".join(verdict.reasons),
            candidate_auc=candidate.holdout_metrics["roc_auc"],
            champion_auc=champion["roc_auc"],
        )
    )
    event = loop.events[-1]
    log(f"{event.day} {trigger} on {event.window[0]}..{event.window[1]}: {event.gate} ({event.reason})")
    if verdict.passed:
        loop.champion = candidate


def monitor(loop: Loop, day: dt.date, current, labelled) -> None:
    """The day's drift and performance records, as monitoring/drift_report and model_performance
    record them for the champion that served it."""
    from mlops_assets.ml.metrics import classification_metrics
    from mlops_assets.monitoring.drift import DriftThresholds, drift_features
    from mlops_assets.monitoring.reports import DriftReference, drift_summary

    reference = loop.champion.reference
    if not isinstance(reference, DriftReference):
        reference = loop.champion.reference = DriftReference(reference)
    thresholds = DriftThresholds()
    categorical, numeric = drift_features(reference.frame)
    summary = drift_summary(
        reference,
        current,
        categorical,
        numeric,
        thresholds.numeric_threshold,
        thresholds.categorical_threshold,
    )
    loop.drift.append({"day": day.isoformat(), **summary.as_record()})
    metrics = classification_metrics(labelled["label_late"].astype(int), labelled["probability_late"])
    loop.performance.append({"day": day.isoformat(), "metrics": metrics})


def sensor_and_schedule(loop: Loop, day: dt.date, trainer: Callable) -> None:
    """The retraining sensor once the day's records exist, then the weekly floor schedule, whose Sunday
    tick sees Saturday as the latest day (the schedule passes no cursor)."""
    from mlops_assets.monitoring.retraining import decide

    decision = decide(
        loop.rules.retraining, loop.info(), day, loop.drift, loop.performance, loop.last_requested_end
    )
    if decision.retrain:
        loop.last_requested_end = dt.date.fromisoformat(decision.window[1])
        retrain(loop, day, decision, "sensor", trainer)
    if day.weekday() == 5:
        decision = decide(
            loop.rules.retraining, loop.info(), day, loop.drift, loop.performance, None, floor=True
        )
        if decision.retrain:
            retrain(loop, day, decision, "schedule", trainer)


def oracle_starts(first: dt.date, last: dt.date, every_days: int | None) -> list[dt.date]:
    """The days the oracle retrains: the first of every month in first..last (and `first` itself), or
    every `every_days` days from `first`."""
    from mlops_assets.lib.calendar import days_between

    days = days_between(first, last)
    if every_days:
        return days[::every_days]
    return [d for d in days if d == first or d.day == 1]


@dataclass
class Replay:
    """Per served flight: day, label and each policy's probability; the loop's events and timings."""

    scores: Any  # DataFrame
    events: list[Event]
    seconds: dict[str, float]
    versions: dict[str, list[str]]  # policy -> the training window that served each day


def replay(
    data: Data,
    first: dt.date,
    last: dt.date,
    rule_set: Rules,
    budget: Budget,
    champion_window: tuple[str, str],
    cache: Path | None,
    oracle_every: int | None = None,
    oracle_days: int = ORACLE_WINDOW_DAYS,
) -> Replay:
    import pandas as pd

    from mlops_assets.lib.calendar import days_between
    from mlops_assets.monitoring.retraining import new_window
    from mlops_assets.serving.batch import score_day

    seconds = {"training": 0.0, "serving": 0.0, "monitoring": 0.0}

    def trainer(window: tuple[str, str]) -> Model:
        started = time.perf_counter()
        model = train(data, window, budget, cache)
        seconds["training"] += time.perf_counter() - started
        log(
            f"trained on {window[0]}..{window[1]}: holdout ROC-AUC {model.holdout_metrics['roc_auc']:.4f} "
            f"({model.seconds:.0f} s when it was fitted)"
        )
        return model

    started = time.perf_counter()
    flights, features = data.served(first, last)
    # Feast answers one row per entity row, in order: each day's rows, so a day's merge is small.
    by_day = dict(tuple(features.assign(_day=flights["_day"].to_numpy()).groupby("_day")))
    by_day = {day: rows.drop(columns="_day") for day, rows in by_day.items()}
    seconds["features"] = time.perf_counter() - started
    champion = trainer(champion_window)
    loop = Loop(rule_set, champion)
    starts = set(oracle_starts(first, last, oracle_every))
    oracle = champion
    frames = []
    versions: dict[str, list[str]] = {p: [] for p in POLICIES}
    for day in days_between(first, last):
        if day in starts:
            window = new_window(day - dt.timedelta(days=1), oracle_days)
            oracle = trainer(window)
        part = flights[flights["_day"] == day]
        t0 = time.perf_counter()
        served = {"loop": (loop.champion, loop.info()), "never": (champion, None), "oracle": (oracle, None)}
        day_flights = part.drop(columns=["_day", "label_late"])
        scored = {}
        for policy, (model, info) in served.items():
            info = info or replace(loop.info(), version=policy, decision_threshold=model.decision_threshold)
            scored[policy] = score_day(day_flights, by_day.get(day), info, model)
            versions[policy].append("..".join(model.window))
        seconds["serving"] += time.perf_counter() - t0
        labels = part["label_late"].to_numpy()
        frame = pd.DataFrame(
            {"day": day, "flight_id": part["flight_id"].to_numpy(), "label_late": labels}
            | {p: s["probability_late"].to_numpy() for p, s in scored.items()}
            | {f"window_{p}": "..".join(m.window) for p, (m, _) in served.items()}
        )
        frames.append(frame)
        t0 = time.perf_counter()
        labelled = scored["loop"].assign(label_late=labels).dropna(subset=["label_late"])
        monitor(loop, day, scored["loop"], labelled)
        seconds["monitoring"] += time.perf_counter() - t0
        sensor_and_schedule(loop, day, trainer)
    return Replay(pd.concat(frames, ignore_index=True), loop.events, seconds, versions)


def month_table(result: Replay) -> list[dict[str, Any]]:
    """Per month: labelled flights, the ROC-AUC each policy served over all the month's flights together,
    and the mean of its daily ROC-AUCs (what monitoring/model_performance records and the sensor reads)."""
    from sklearn.metrics import roc_auc_score

    scores = result.scores.dropna(subset=["label_late"])
    months = scores["day"].map(lambda d: d.strftime("%Y-%m"))
    rows = []
    for month, part in scores.groupby(months, sort=True):
        labels = part["label_late"].astype(int)
        days = [d for _, d in part.groupby("day") if d["label_late"].nunique() == 2]
        daily = {
            f"{p}_daily": sum(roc_auc_score(d["label_late"].astype(int), d[p]) for d in days) / len(days)
            for p in POLICIES
        }
        rows.append(
            {"month": month, "flights": len(part)}
            | {p: float(roc_auc_score(labels, part[p])) for p in POLICIES}
            | daily
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| month | flights | (a) loop | (b) Jan-Mar champion | (c) oracle | (a) - (b) | (a) - (c) "
        "| daily mean (a) / (b) / (c) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0] if k not in ("month", "flights")}
    for r in [*rows, {"month": "mean", **mean}]:
        flights = f"{r['flights']:,}" if "flights" in r else ""
        daily = " / ".join(f"{r[f'{p}_daily']:.4f}" for p in POLICIES)
        lines.append(
            f"| {r['month']} | {flights} | {r['loop']:.4f} | {r['never']:.4f} | {r['oracle']:.4f} | "
            f"{r['loop'] - r['never']:+.4f} | {r['loop'] - r['oracle']:+.4f} | {daily} |"
        )
    return lines


def format_events(events: list[Event]) -> list[str]:
    lines = [
        "| day | trigger | window | candidate / champion ROC-AUC (its holdout) | gate |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in events:
        lines.append(
            f"| {e.day} | {e.trigger}: {e.reason} | {e.window[0]}..{e.window[1]} | "
            f"{e.candidate_auc:.4f} / {e.champion_auc:.4f} | {e.gate} |"
        )
    return lines


def verdict(rows: list[dict[str, Any]], suffix: str = "") -> str:
    """The goal on one measure: never under (b) in a month, at most 0.01 under (c) on average."""
    loop, never, oracle = (f"{p}{suffix}" for p in POLICIES)
    below = [r["month"] for r in rows if r[loop] < r[never]]
    gap = sum(r[oracle] - r[loop] for r in rows) / len(rows)
    goal = not below and gap <= 0.01
    return (
        f"goal {'met' if goal else 'NOT met'}: months under the never-retrained champion: "
        f"{', '.join(below) or 'none'}; mean {-gap:+.4f} against the oracle (goal >= -0.01)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="data and model cache, reused")
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2013, 4, 1))
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2013, 12, 31))
    parser.add_argument("--months", type=int, default=None, help="serve this many months from --start")
    parser.add_argument(
        "--ece-acceptable", type=float, default=None, help="replace RegistryConfig's ece_acceptable"
    )
    parser.add_argument(
        "--cooldown-days", type=int, default=None, help="replace RetrainingPolicy's cooldown_days"
    )
    parser.add_argument(
        "--window-days",
        type=int,
        default=None,
        help="replace RetrainingPolicy's window_days (the oracle's window too)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the table and events here")
    parser.add_argument("--scores", type=Path, default=None, help="write every served probability here")
    args = parser.parse_args(argv)
    end = args.end
    if args.months:
        year, month = divmod(args.start.month - 1 + args.months, 12)
        end = min(end, dt.date(args.start.year + year, month + 1, 1) - dt.timedelta(days=1))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    args.home.mkdir(parents=True, exist_ok=True)
    warehouse = prepare_warehouse(args.home, DATA_FIRST, DATA_LAST)
    write_feature_lake(args.home, warehouse, DATA_FIRST, DATA_LAST)
    from mlops_assets.defs.features.feast_assets import TrainingSetConfig

    data = Data(args.home, TrainingSetConfig.model_fields["feature_service"].default)
    given = {"cooldown_days": args.cooldown_days, "window_days": args.window_days}
    policy = {k: v for k, v in given.items() if v is not None}
    rule_set = rules(args.ece_acceptable, **policy)
    result = replay(data, args.start, end, rule_set, Budget(), CHAMPION_WINDOW, args.home / "models")
    rows = month_table(result)
    total = time.perf_counter() - started
    gate_rules = f"min_auc_gain {rule_set.min_auc_gain}, ece_tolerance {rule_set.ece_tolerance}, "
    print(f"\nrules {rule_set.name}: {rule_set.retraining.model_dump()}, gate {gate_rules}"
          f"ece_acceptable {rule_set.ece_acceptable}")  # fmt: skip
    print("\n".join(format_table(rows)))
    print(f"\nretraining requests of the loop ({len(result.events)}):")
    print("\n".join(format_events(result.events)))
    print(f"\nmonth's ROC-AUC: {verdict(rows)}\nmean daily ROC-AUC: {verdict(rows, '_daily')}")
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    print(f"{args.start}..{end} in {total:.0f} s ({timing})")
    if args.scores:
        result.scores.to_parquet(args.scores)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rules": rule_set.name,
                    "months": rows,
                    "events": [e.__dict__ for e in result.events],
                    "seconds": result.seconds,
                    "total_seconds": total,
                },
                indent=1,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
