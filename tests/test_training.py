"""The training stage on a real three-week window, on the CPU, against a local MLflow store.

1. the training core: split, preprocessing fitted on training days only, determinism;
2. the graph: Ray Tune trials as nested MLflow runs, the model run's lineage, the evaluation, the first
   champion, loaded by its alias in a fresh process;
3. the gate: a model trained on shuffled labels becomes challenger and is NOT promoted;
4. promotion and rollback through `mlops model`, with the alias history kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from tests.conftest import TRAINING_PLAN, TRAINING_WINDOW

PROBE = Path(__file__).parent / "probes" / "load_champion.py"
TUNING = {"num_samples": 2, "max_epochs": 2, "grace_period": 1}
TRAINING_KEYS = [
    dg.AssetKey(["models", name])
    for name in (
        "tuned_hyperparameters",
        "baselines",
        "flight_delay_model",
        "model_evaluation",
        "registered_model",
    )
]


def training_resources(home: Path, tracking_uri: str | None = None, family: str | None = None) -> dict:
    from mlops_assets.resources.compute import ComputeResource
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.resources.tracking import MlflowResource
    from mlops_assets.resources.training_plan import TrainingPlan

    mlflow_dir = home / "mlflow"
    tracking = tracking_uri or f"sqlite:///{mlflow_dir / 'mlflow.db'}"
    return {
        "mlflow": MlflowResource(
            tracking_uri=tracking,
            artifact_location=None if tracking_uri else (mlflow_dir / "artifacts").as_uri(),
        ),
        "compute": ComputeResource(device="cpu", num_cpus=2),
        "training": TrainingPlan(home=str(home), **TRAINING_PLAN, **({"family": family} if family else {})),
        "lake": LocalObjectStore(root=str(home / "lake")),
    }


def run_training(
    resources: dict, selection=None, ops: dict | None = None, assets=(), **options
) -> dg.ExecuteInProcessResult:
    """The training graph in-process; `assets` adds assets of a test, `options` go to dg.materialize
    (an instance shared by several runs, raise_on_error)."""
    from mlops_assets.defs.training.assets import build_training_assets

    config = {"models__tuned_hyperparameters": {"config": TUNING}, **(ops or {})}
    return dg.materialize(
        [*build_training_assets(), *assets],
        selection=selection or TRAINING_KEYS,
        resources=resources,
        run_config={"ops": {k: v for k, v in config.items() if selection is None or k in _ops(selection)}},
        **options,
    )


def _ops(selection) -> set[str]:
    return {"__".join(key.path) for key in selection}


def metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def training_frame(home: Path) -> pd.DataFrame:
    pointer = json.loads((home / "lake" / "features" / "training_set" / "latest.json").read_text())
    return pd.read_parquet(home / "lake" / pointer["key"])


# ---- the core -------------------------------------------------------------------------------------------


def test_split_is_temporal_and_preprocessing_sees_only_training_days(training_set_home):
    from mlops_assets.ml.data import categorical_columns, local_days, numeric_columns, temporal_split
    from mlops_assets.ml.preprocessing import Preprocessor

    frame = training_frame(training_set_home)
    split = temporal_split(frame, **TRAINING_PLAN)
    assert len(split.train) + len(split.valid) + len(split.holdout) == len(frame)
    assert local_days(split.train).max() < local_days(split.valid).min()
    assert local_days(split.valid).max() < local_days(split.holdout).min()
    assert local_days(split.holdout).nunique() == TRAINING_PLAN["holdout_days"]
    assert str(local_days(split.holdout).max()) == TRAINING_WINDOW[1]

    prep = Preprocessor.fit(split.train, categorical_columns(frame), numeric_columns(frame))
    column = "weather_hourly__temp"
    grid = np.linspace(0, 1, len(prep.quantiles[column]))
    assert prep.median[column] == pytest.approx(split.train[column].median())
    assert prep.quantiles[column] == pytest.approx(np.quantile(split.train[column].dropna(), grid).tolist())
    assert prep.quantiles[column] != pytest.approx(np.quantile(frame[column].dropna(), grid).tolist())
    # A destination first seen after the training days maps to the "unseen" index 0, never a new one.
    unseen = set(split.holdout["dest"]) - set(split.train["dest"])
    codes, numbers = prep.transform(pd.concat([split.train.head(3), split.holdout]))
    assert codes.min() >= 0 and np.isfinite(numbers).all()
    if unseen:
        rows = split.holdout["dest"].isin(unseen).to_numpy()
        assert (codes[3:][rows, prep.categorical.index("dest")] == 0).all()
    with pytest.raises(KeyError, match="weather_hourly__temp"):
        prep.transform(split.holdout.drop(columns=[column]))


def test_training_is_seeded_and_deterministic_on_cpu(training_set_home):
    import torch

    from mlops_assets.ml.data import LABEL, categorical_columns, numeric_columns, temporal_split
    from mlops_assets.ml.fit import HyperParameters, Tensors, fit
    from mlops_assets.ml.preprocessing import Preprocessor

    frame = training_frame(training_set_home)
    split = temporal_split(frame, **TRAINING_PLAN)
    prep = Preprocessor.fit(split.train, categorical_columns(frame), numeric_columns(frame))
    cpu = torch.device("cpu")
    train, valid = (Tensors.build(prep, part, LABEL, cpu) for part in (split.train, split.valid))
    hp = HyperParameters(max_epochs=5, patience=5)
    first, second = fit(prep, train, valid, hp, seed=7), fit(prep, train, valid, hp, seed=7)
    other = fit(prep, train, valid, hp, seed=8)
    for name, weights in first.model.state_dict().items():
        assert torch.equal(weights, second.model.state_dict()[name]), name
    learned = ("train_loss", "val_loss", "val_auc")
    assert [[h[k] for k in learned] for h in first.history] == [
        [h[k] for k in learned] for h in second.history
    ]
    assert first.history[-1]["val_loss"] != other.history[-1]["val_loss"]
    # Learns something, leaks nothing (a hard 4-day validation after 12 training days). With the 62
    # features of flight_delay_v2 the untuned network reaches about 0.54 in these 5 epochs (above 0.55
    # with v1's 56): more inputs to fit from the same few days.
    assert 0.52 < first.best["val_auc"] < 0.85


def test_gate_rules():
    from mlops_assets.training.registry import gate

    floor = {"roc_auc": 0.68, "ece": 0.02}
    champion = {"roc_auc": 0.72, "ece": 0.02}
    assert gate({"roc_auc": 0.70, "ece": 0.02}, None, floor, "logistic_regression", 0.002, 0.01).passed
    refused = gate({"roc_auc": 0.68, "ece": 0.02}, None, floor, "logistic_regression", 0.002, 0.01)
    assert not refused.passed and refused.compared_with == "logistic_regression"  # a tie does not beat it
    assert gate({"roc_auc": 0.681, "ece": 0.02}, None, floor, "logistic_regression", 0.002, 0.01).passed
    assert not gate(
        {"roc_auc": 0.681, "ece": 0.02}, None, floor, "lr", 0.002, 0.01, floor_margin=0.005
    ).passed
    assert not gate({"roc_auc": 0.721, "ece": 0.02}, champion, floor, "lr", 0.002, 0.01).passed
    assert gate({"roc_auc": 0.723, "ece": 0.025}, champion, floor, "lr", 0.002, 0.01).passed
    worse_calibrated = gate({"roc_auc": 0.75, "ece": 0.05}, champion, floor, "lr", 0.002, 0.01)
    assert not worse_calibrated.passed and "ece" in worse_calibrated.reasons[0]
    # An ECE within what the late rate's weekly move explains passes whatever the champion's.
    assert gate({"roc_auc": 0.75, "ece": 0.05}, champion, floor, "lr", 0.002, 0.01, ece_acceptable=0.1).passed
    badly = gate({"roc_auc": 0.75, "ece": 0.15}, champion, floor, "lr", 0.002, 0.01, ece_acceptable=0.1)
    assert not badly.passed and badly.reasons == ["ece 0.1500 > champion 0.0200 + 0.01 and > 0.1"]
    # It never lets a weaker ranking through.
    weaker = gate({"roc_auc": 0.72, "ece": 0.0}, champion, floor, "lr", 0.002, 0.01, ece_acceptable=0.1)
    assert not weaker.passed


# ---- the graph -----------------------------------------------------------------------------------------


# Twelve training days are too few for the network to beat logistic regression (measured on this window:
# ROC-AUC about 0.65 against 0.69; on January-March it is level with the trees, see bench/training_bench.py).
# The first registration therefore relaxes the floor: these tests are about registration, aliases and
# lineage; the gate's rules are tested above and its refusal below, with the default thresholds.
RELAXED_FLOOR = {"models__registered_model": {"config": {"floor_margin": -0.2, "ece_tolerance": 0.5}}}


@pytest.fixture(scope="module")
def trained(training_set_home):
    """The whole training graph once, both families compared: the first model becomes champion."""
    # `auto`: both families are trained and judged on validation (the default trains the trees alone).
    resources = training_resources(training_set_home, family="auto")
    auth_mode = os.environ.get("RAY_AUTH_MODE")
    result = run_training(resources, ops=RELAXED_FLOOR)
    assert result.success
    # The local Ray Tune run gives the process back its RAY_AUTH_MODE (Ray's ray.init() sets it to token,
    # and a later driver joining `mlops cluster`'s Ray would have every trial cancelled).
    assert os.environ.get("RAY_AUTH_MODE") == auth_mode
    return training_set_home, resources, result


def test_tuning_runs_trials_as_nested_mlflow_runs(trained):
    home, resources, result = trained
    tuned = metadata(result, TRAINING_KEYS[0])
    assert tuned["trial_count"] == TUNING["num_samples"] and tuned["parallel_trials"] == 2
    assert set(tuned["best_hyperparameters"]) >= {"learning_rate", "width", "depth", "dropout", "batch_size"}
    assert tuned["wall_s"] > 0 and tuned["ideal_s (trial time / parallelism)"] > 0
    client = resources["mlflow"].client()
    experiment = client.get_experiment_by_name("flight_delay")
    record = json.loads((home / "lake" / "models" / "tuned_hyperparameters.json").read_text())
    children = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{record['mlflow_run_id']}'"
    )
    assert len(children) == TUNING["num_samples"]
    assert all("val_auc" in run.data.metrics for run in children)


def test_model_run_carries_lineage_and_per_epoch_metrics(trained):
    home, resources, result = trained
    record = json.loads((home / "lake" / "models" / "flight_delay_model.json").read_text())
    client = resources["mlflow"].client()
    run = client.get_run(record["run_id"])
    tags = run.data.tags
    pointer = json.loads((home / "lake" / "features" / "training_set" / "latest.json").read_text())
    assert tags["dagster.run_id"] == result.run_id
    assert tags["training_set.sha256"] == pointer["content_sha256"]
    assert tags["training_window"] == "..".join(TRAINING_WINDOW)
    assert tags["feature_service"] == "flight_delay_v2"
    assert run.data.params["learning_rate"] and run.data.params["train_rows"]
    # Both families were fitted on the training days and judged on validation; the better one is the model.
    from mlops_assets.training.challenger import FAMILIES

    scores = {family: run.data.metrics[f"val_auc_{family}"] for family in FAMILIES}
    assert record["model_family"] == tags["model_family"] == max(scores, key=scores.get)
    assert run.data.params["trees.max_leaf_nodes"] and record["trees"]["valid_auc"] == pytest.approx(
        scores["gradient_boosting"]
    )
    history = client.get_metric_history(record["run_id"], "member0/val_auc")  # first of the seed ensemble
    assert [m.step for m in history] == list(range(1, len(history) + 1)) and len(history) >= 2
    assert run.data.params["ensemble_size"] == "5" and client.get_metric_history(
        record["run_id"], "member4/val_auc"
    )
    assert run.data.metrics["train_samples_per_second"] > 0
    assert run.data.metrics["holdout_roc_auc"] > 0.6  # logged by the evaluation
    artifacts = {a.path for a in client.list_artifacts(record["run_id"], "evaluation")}
    assert "evaluation/calibration.png" in artifacts and "evaluation/holdout_by_carrier.csv" in artifacts


def test_one_run_records_one_training_set_in_every_materialization(trained):
    """The run's first step fixes its set (here from latest.json: this run's instance holds no
    materialization of features/training_set); every later step records that it found it pinned."""
    home, resources, result = trained
    pointer = json.loads((home / "lake" / "features" / "training_set" / "latest.json").read_text())
    assert pointer["key"].endswith(f"_{pointer['content_sha256'][:16]}.parquet")  # content-addressed
    expected = {
        "training_set/key": pointer["key"],
        "training_set/sha256": pointer["content_sha256"],
        "training_set/window": "..".join(TRAINING_WINDOW),
    }
    sources = {}
    for key in TRAINING_KEYS:
        recorded = metadata(result, key)
        assert {name: recorded[name] for name in expected} == expected, key
        sources[key.path[-1]] = recorded["training_set/source"]
    # The first step of the run (tuning or the baselines: neither waits for the other) resolved it.
    first = [name for name, source in sources.items() if source.startswith("features/training_set/latest")]
    assert len(first) == 1 and first[0] in ("tuned_hyperparameters", "baselines"), sources
    sources.pop(first[0])
    assert set(sources.values()) == {f"pinned by models/{first[0]} earlier in this run"}
    version = resources["mlflow"].client().get_model_version("flight_delay", "1")
    assert version.tags["training_set.key"] == pointer["key"]
    assert version.tags["training_set.sha256"] == pointer["content_sha256"]


def test_evaluation_compares_models_on_the_same_holdout(trained):
    _, _, result = trained
    evaluation = metadata(result, TRAINING_KEYS[3])
    for model in ("candidate", "logistic_regression", "hist_gradient_boosting"):
        assert 0.6 < evaluation[f"{model}/roc_auc"] < 0.85, model
    assert "champion/roc_auc" not in evaluation  # the first run has no champion
    assert "| candidate" in evaluation["comparison"] and "pr_auc" in evaluation["comparison"]
    assert Path(evaluation["calibration_plot"]).stat().st_size > 10_000
    assert checks(result)["plausible_holdout_metrics"].passed


def test_first_model_becomes_champion_and_loads_by_alias_in_a_fresh_process(trained):
    home, resources, result = trained
    registered = metadata(result, TRAINING_KEYS[4])
    assert registered["version"] == "1" and registered["champion"] == "1" and registered["promoted"]
    assert checks(result)["promotion_gate"].passed
    frame = training_frame(home).tail(50)
    out = probe_champion(resources["mlflow"].tracking_uri, frame, home)
    assert out["version"] == "1"
    probabilities = np.array(out["probabilities"])
    assert probabilities.shape == (50,) and ((probabilities > 0) & (probabilities < 1)).all()

    import mlflow

    resources["mlflow"].activate()
    in_process = mlflow.pyfunc.load_model("models:/flight_delay@champion").predict(_model_inputs(frame))
    # float32 networks: another process may sum in another order (its own torch thread count), which
    # moves the 5th significant digit (2.7e-5 seen on a loaded machine); a different model moves the 2nd.
    np.testing.assert_allclose(in_process.to_numpy(), probabilities, rtol=1e-4)


def _model_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    from mlops_assets.ml.data import categorical_columns, numeric_columns
    from mlops_assets.training.data import model_input_frame

    return model_input_frame(frame, categorical_columns(frame), numeric_columns(frame))


def probe_champion(tracking_uri: str, frame: pd.DataFrame, home: Path, env: dict | None = None) -> dict:
    """Load models:/flight_delay@champion in a new Python process and score `frame`."""
    rows = home / "probe_rows.parquet"
    _model_inputs(frame).to_parquet(rows)
    completed = subprocess.run(
        [sys.executable, str(PROBE), tracking_uri, str(rows)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def refused(trained):
    """A second model, trained on shuffled labels, through training, evaluation and the registry."""
    _, resources, _ = trained
    keys = TRAINING_KEYS[2:]
    result = run_training(
        resources, selection=keys, ops={"models__flight_delay_model": {"config": {"shuffle_labels": True}}}
    )
    assert result.success
    return result


def test_a_model_trained_on_shuffled_labels_is_registered_but_not_promoted(trained, refused):
    _, resources, _ = trained
    evaluation = metadata(refused, TRAINING_KEYS[3])
    assert evaluation["candidate/roc_auc"] < 0.6 < evaluation["champion/roc_auc"]
    registered = metadata(refused, TRAINING_KEYS[4])
    assert registered["version"] == "2" and not registered["promoted"]
    assert registered["champion"] == "1" and registered["compared_with"] == "champion"
    gate = checks(refused)["promotion_gate"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.WARN
    client = resources["mlflow"].client()
    assert str(client.get_model_version_by_alias("flight_delay", "challenger").version) == "2"
    assert str(client.get_model_version_by_alias("flight_delay", "champion").version) == "1"
    assert client.get_model_version("flight_delay", "2").tags["gate"] == "refused"


def test_promote_and_rollback_commands_keep_the_alias_history(trained, refused, monkeypatch, capsys):
    from mlops_assets.cli import main

    home, resources, _ = trained
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_PROFILE", "local")
    client = resources["mlflow"].client()

    assert main(["model", "promote", "--version", "2", "--reason", "manual override in a test"]) == 0
    assert str(client.get_model_version_by_alias("flight_delay", "champion").version) == "2"
    # The last evaluation scored version 1 as champion: registering against it now would be stale.
    from mlops_assets.defs.training.assets import build_training_assets

    stale = dg.materialize(
        build_training_assets(), selection=[TRAINING_KEYS[4]], resources=resources, raise_on_error=False
    )
    assert not stale.success
    assert "materialize models/model_evaluation again" in str(stale.failure_data_for_node(
        "models__registered_model").user_failure_data.description)  # fmt: skip
    assert len(client.search_model_versions("name = 'flight_delay'")) == 2
    assert main(["model", "rollback"]) == 0
    assert str(client.get_model_version_by_alias("flight_delay", "champion").version) == "1"
    with pytest.raises(SystemExit, match="first champion"):
        main(["model", "rollback"])
    assert main(["model", "history"]) == 0
    printed = capsys.readouterr().out
    assert "rollback" in printed and "manual override in a test" in printed
    events = json.loads(client.get_registered_model("flight_delay").tags["alias_history"])
    assert [(e["alias"], e["action"], e["version"], e["previous"]) for e in events] == [
        ("challenger", "register", "1", None),
        ("champion", "promote", "1", None),
        ("challenger", "register", "2", "1"),
        ("champion", "promote", "2", "1"),
        ("champion", "rollback", "1", "2"),
    ]


def test_a_boosted_challenger_is_refit_on_train_and_validation_and_loads_as_one_pyfunc(trained):
    """Forced to the trees: the grid's best configuration (models/baselines) refitted with its rounds on
    train + validation, calibrated on the most recent validation days, logged as one pyfunc that scores
    as the bundle does; its threshold comes from out-of-sample validation probabilities."""
    import mlflow

    from mlops_assets.ml.boosting import BoostedModel
    from mlops_assets.ml.data import categorical_columns, numeric_columns, temporal_split

    home, resources, _ = trained
    keys = [TRAINING_KEYS[2], TRAINING_KEYS[3]]  # model and evaluation: nothing is registered
    ops = {"models__flight_delay_model": {"config": {"calibration_days": 2}}}
    trees = training_resources(home, family="gradient_boosting")
    result = run_training(trees, selection=keys, ops=ops)
    assert result.success
    record = json.loads((home / "lake" / "models" / "flight_delay_model.json").read_text())
    baselines = json.loads((home / "lake" / "models" / "baselines.json").read_text())
    chosen = baselines["models"]["hist_gradient_boosting"]["grid"][0]
    assert record["model_family"] == "gradient_boosting" and record["trees"] == chosen
    assert "asked for" in record["family_choice"]
    resources["mlflow"].activate()
    model = mlflow.pyfunc.load_model(record["model_uri"])
    bundle = model.unwrap_python_model().bundle
    assert isinstance(bundle, BoostedModel)
    assert (
        bundle.trees.n_iter_ == chosen["iterations"]
        and bundle.params.max_leaf_nodes == chosen["max_leaf_nodes"]
    )
    frame = training_frame(home)
    split = temporal_split(frame, **TRAINING_PLAN)
    # The refit's preprocessing was fitted on train + validation, not on the training days alone.
    from mlops_assets.ml.preprocessing import Preprocessor

    both = pd.concat([split.train, split.valid])
    columns = (categorical_columns(frame), numeric_columns(frame))
    assert bundle.preprocessor.quantiles == Preprocessor.fit(both, *columns).quantiles
    assert bundle.preprocessor.quantiles != Preprocessor.fit(split.train, *columns).quantiles
    assert record["calibration_slope"] == bundle.calibration.slope != 1.0
    inputs = _model_inputs(split.holdout)
    np.testing.assert_array_equal(model.predict(inputs).to_numpy(), bundle.predict(inputs))
    assert set(inputs.columns) == {*categorical_columns(frame), *numeric_columns(frame)}
    assert 0 < record["decision_threshold"] < 1
    evaluation = metadata(result, TRAINING_KEYS[3])
    assert 0.6 < evaluation["candidate/roc_auc"] < 0.85


def test_the_trees_skip_ray_tune_and_the_network_refuses_an_untuned_record(trained, tmp_path):
    """With the default family (the trees) the tuning step starts no Ray and logs no MLflow run, and
    records that it tuned nothing, on the run's training set; a network asked for afterwards, without
    tuning again, fails and says why instead of training on untuned defaults."""
    import shutil

    home, _, _ = trained
    copy = tmp_path / "home"
    shutil.copytree(home / "lake", copy / "lake")  # the set and the records; a fresh MLflow store
    trees = training_resources(copy, family="gradient_boosting")
    result = run_training(trees, selection=[TRAINING_KEYS[0]])
    assert result.success
    tuned = metadata(result, TRAINING_KEYS[0])
    assert tuned["tuned"] is False and tuned["trial_count"] == 0
    assert "gradient_boosting" in tuned["not_tuned_because"]
    record = json.loads((copy / "lake" / "models" / "tuned_hyperparameters.json").read_text())
    pointer = json.loads((copy / "lake" / "features" / "training_set" / "latest.json").read_text())
    assert record["tuned"] is False and record["training_set"]["content_sha256"] == pointer["content_sha256"]
    assert not (copy / "scratch" / "ray_results").exists()
    experiment = trees["mlflow"].client().get_experiment_by_name("flight_delay")
    assert experiment is None or not trees["mlflow"].client().search_runs([experiment.experiment_id])

    network = training_resources(copy, family="pytorch_tabular")
    refused = run_training(network, selection=[TRAINING_KEYS[2]], raise_on_error=False)
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.message
    assert "trains the network" in message and "did not tune it" in message, message


def test_a_trial_that_never_started_does_not_fail_the_tuning(tmp_path):
    """`trial_runs_logger` (Ray's MLflowLoggerCallback, reading its `_trial_runs`): ending a trial that
    never started is a no-op; a started trial's nested run is ended as Ray's callback ends it."""
    import mlflow

    from mlops_assets.training.tuning import trial_runs_logger

    class Trial:
        config = {"learning_rate": 0.01}
        local_path = str(tmp_path)

        def __str__(self) -> str:
            return "trial_00000"

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logger = trial_runs_logger(tracking_uri=uri, registry_uri=uri, experiment_name="tune-logger")
    logger.setup()
    logger.log_trial_end(Trial(), failed=True)  # cancelled before it ran: Ray's own raised KeyError
    started = Trial()
    logger.log_trial_start(started)
    logger.log_trial_end(started)
    [run] = mlflow.MlflowClient(uri).search_runs(
        [mlflow.MlflowClient(uri).get_experiment_by_name("tune-logger").experiment_id]
    )
    assert run.info.status == "FINISHED" and run.data.params == {"learning_rate": "0.01"}
