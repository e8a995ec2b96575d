"""One training set per training run, through what the Dagster instance recorded.

A copy of the session's training home and one Dagster instance shared by every run of this module, as a
deployment's instance is: training set A is materialized and the chain tuned, trained and evaluated on it;
then training set B lands. A model is never trained, evaluated or registered against another set than its
upstreams used: each such attempt is a failure that names both sets, and a set that lands in the middle of
a run does not change that run's set.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import TRAINING_PLAN, TRAINING_WINDOW, _without_state
from tests.test_training import RELAXED_FLOOR, TRAINING_KEYS, run_training, training_resources

TRAINING_SET = dg.AssetKey(["features", "training_set"])
TUNED, BASELINES, MODEL, EVALUATION, REGISTERED = TRAINING_KEYS
# B ends where A's training days are: its holdout (the last 5 days) is days A's model learned from.
WINDOW_B = ("2013-01-01", "2013-01-12")
QUICK = {"models__flight_delay_model": {"config": {"ensemble_size": 1, "max_epochs": 2}}}


@pytest.fixture(scope="module")
def home(training_set_home: Path, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("identity_home")
    shutil.copytree(training_set_home, target, dirs_exist_ok=True, ignore=_without_state(training_set_home))
    return target


@pytest.fixture(scope="module")
def instance():
    with dg.DagsterInstance.ephemeral() as shared:
        yield shared


def materialize_set(home: Path, instance: dg.DagsterInstance, window: tuple[str, str], apply: bool):
    from mlops_assets.defs.features.feast_assets import build_feast_assets
    from mlops_assets.features.training_set import TrainingSetIdentity
    from mlops_assets.resources.feature_store import FeastResource
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.resources.warehouse import DuckDBWarehouse

    selection = [TRAINING_SET, *([dg.AssetKey(["features", "feature_views"])] if apply else [])]
    result = dg.materialize(
        build_feast_assets(),
        selection=selection,
        instance=instance,
        resources={
            "feast": FeastResource(profile="local", home=str(home)),
            "lake": LocalObjectStore(root=str(home / "lake")),
            "warehouse": DuckDBWarehouse(path=str(home / "warehouse.duckdb")),
        },
        run_config={
            "ops": {"features__training_set": {"config": {"start_date": window[0], "end_date": window[1]}}}
        },
    )
    assert result.success
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == TRAINING_SET]
    identity = TrainingSetIdentity.from_metadata(event.materialization.metadata)
    assert identity is not None and identity.window == window
    return identity


@pytest.fixture(scope="module")
def set_a(home, instance, training_set_home):
    identity = materialize_set(home, instance, TRAINING_WINDOW, apply=True)
    pointer = json.loads((training_set_home / "lake/features/training_set/latest.json").read_text())
    # The same window gives the same content, hence the same key: the set the session built.
    assert (identity.key, identity.sha256) == (pointer["key"], pointer["content_sha256"])
    return identity


@pytest.fixture(scope="module")
def chain_on_a(home, instance, set_a):
    result = run_training(
        training_resources(home),
        selection=[TUNED, BASELINES, MODEL, EVALUATION],
        ops=QUICK,
        instance=instance,
    )
    assert result.success
    return result


@pytest.fixture(scope="module")
def set_b(home, instance, chain_on_a):
    return materialize_set(home, instance, WINDOW_B, apply=False)


def recorded(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def failure(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> str:
    assert not result.success
    return result.failure_data_for_node("__".join(key.path)).user_failure_data.description


def model_record(home: Path) -> dict:
    return json.loads((home / "lake/models/flight_delay_model.json").read_text())


def test_a_chain_run_records_the_set_materialized_in_the_instance(chain_on_a, set_a):
    sources = {}
    for key in (TUNED, BASELINES, MODEL, EVALUATION):
        metadata = recorded(chain_on_a, key)
        assert (metadata["training_set/key"], metadata["training_set/sha256"]) == (set_a.key, set_a.sha256)
        assert metadata["training_set/window"] == "..".join(TRAINING_WINDOW)
        sources[key] = metadata["training_set/source"]
    # The run's first step (tuning or the baselines) read the instance's latest materialization of the
    # set; every later step found it pinned in this run.
    first = TUNED if sources[TUNED].startswith("latest materialization") else BASELINES
    assert sources.pop(first).startswith("latest materialization of features/training_set"), sources
    assert set(sources.values()) == {f"pinned by {first.to_user_string()} earlier in this run"}


def test_a_reader_names_the_records_it_consumed(home, chain_on_a):
    """Each writer's metadata names its record and hash; each reader's names the records it read, with
    the run that wrote them: here all of one run, the chain's."""
    written = {}
    for key in (TUNED, BASELINES, MODEL, EVALUATION):
        metadata = recorded(chain_on_a, key)
        path = f"models/{key.path[-1]}.json"
        assert metadata["record_key"] == path
        # The chain is the last run that wrote these records: the hash is of the bytes in the lake.
        assert metadata["record_sha256"] == hashlib.sha256((home / "lake" / path).read_bytes()).hexdigest()
        written[key] = {"key": path, "sha256": metadata["record_sha256"], "run_id": chain_on_a.run_id}
    for reader, upstreams in ((MODEL, [TUNED, BASELINES]), (EVALUATION, [MODEL, BASELINES])):
        consumed = recorded(chain_on_a, reader)["consumed_records"]
        assert [{k: r[k] for k in ("key", "sha256", "run_id")} for r in consumed] == [
            written[key] for key in upstreams
        ]


def test_a_record_written_by_another_run_than_its_materialization_is_refused(home, instance, chain_on_a):
    """The model record names the training set the evaluation expects, but not the run of the model's
    materialization the instance recorded: another run wrote it, so it is not the model that run made."""
    path = home / "lake/models/flight_delay_model.json"
    original = path.read_text()
    record = json.loads(original)
    materialized_by = instance.get_latest_materialization_event(MODEL).run_id
    assert record["dagster"]["run_id"] == materialized_by == chain_on_a.run_id
    path.write_text(json.dumps({**record, "dagster": {**record["dagster"], "run_id": "another-run"}}))
    evaluation = (home / "lake/models/model_evaluation.json").read_bytes()
    try:
        result = run_training(
            training_resources(home), selection=[EVALUATION], instance=instance, raise_on_error=False
        )
        message = failure(result, EVALUATION)
        assert "written by run another-run" in message, message
        assert f"made by run {materialized_by}" in message, message
        assert "Materialize models/flight_delay_model again" in message
        assert (home / "lake/models/model_evaluation.json").read_bytes() == evaluation  # nothing evaluated
    finally:
        path.write_text(original)


@dg.asset(deps=[MODEL, BASELINES], op_tags={"dagster/priority": "10"})
def a_new_training_set_lands(context) -> dg.MaterializeResult:  # a string annotation is refused
    """Between the model and its evaluation, another training set is reported to the instance (as a
    features/training_set run beside this one would). Priority 10: it runs before the evaluation."""
    from mlops_assets.features.training_set import TrainingSetIdentity

    other = TrainingSetIdentity("features/training_set/landed_mid_run.parquet", "f" * 64, WINDOW_B, "x")
    context.instance.report_runless_asset_event(
        dg.AssetMaterialization(TRAINING_SET, metadata=other.metadata())
    )
    assert (
        TrainingSetIdentity.from_metadata(
            context.instance.get_latest_materialization_event(TRAINING_SET).asset_materialization.metadata
        )
        == other
    )
    return dg.MaterializeResult()


def test_a_set_landing_in_the_middle_of_a_run_does_not_change_the_runs_set(home, instance, chain_on_a, set_a):
    """Runs before set_b (file order): the instance's latest set is still A when the run starts."""
    result = run_training(
        training_resources(home),
        selection=[BASELINES, MODEL, a_new_training_set_lands.key, EVALUATION],
        ops=QUICK,
        assets=[a_new_training_set_lands],
        instance=instance,
    )
    assert result.success
    order = [e.asset_key for e in result.get_asset_materialization_events()]
    assert order.index(a_new_training_set_lands.key) < order.index(EVALUATION)  # it did land mid-run
    evaluation = recorded(result, EVALUATION)
    assert evaluation["training_set/sha256"] == set_a.sha256
    assert evaluation["training_set/source"].startswith("pinned by models/")


@pytest.mark.parametrize("shared_instance", [True, False], ids=["instance", "lake-records-only"])
def test_a_model_refuses_hyperparameters_tuned_on_another_set(home, instance, set_a, set_b, shared_instance):
    """With the instance: tuning's materialization says A, the latest training set is B. Without it (an
    instance that holds neither): the tuning record says A, latest.json says B."""
    before = model_record(home)
    result = run_training(
        training_resources(home),
        selection=[MODEL],
        ops=QUICK,
        instance=instance if shared_instance else None,
        raise_on_error=False,
    )
    message = failure(result, MODEL)
    assert set_a.sha256 in message and set_b.sha256 in message, message
    assert "models/tuned_hyperparameters was made from training set" in message
    assert "--select 'models/tuned_hyperparameters*'" in message
    assert model_record(home) == before  # nothing was trained


def test_an_evaluation_refuses_a_model_of_another_set(home, instance, set_a, set_b):
    from mlops_assets.ml.data import local_days, temporal_split
    from mlops_assets.resources.storage import LocalObjectStore

    lake = LocalObjectStore(root=str(home / "lake"))
    learned = temporal_split(lake.read_parquet(set_a.key), **TRAINING_PLAN).train
    holdout_b = temporal_split(lake.read_parquet(set_b.key), **TRAINING_PLAN).holdout
    # What the refusal prevents: B's holdout is days A's model learned from.
    assert set(local_days(holdout_b)) <= set(local_days(learned))
    result = run_training(
        training_resources(home), selection=[EVALUATION], instance=instance, raise_on_error=False
    )
    message = failure(result, EVALUATION)
    assert "models/flight_delay_model was made from training set" in message
    assert set_a.sha256 in message and set_b.sha256 in message, message


def test_registration_registers_the_set_the_model_was_evaluated_on(home, instance, set_a, set_b):
    """B is the newest set, but the model and its evaluation are A's: A's identity is registered."""
    from mlops_assets.training.registry import champion_info

    resources = training_resources(home)
    result = run_training(resources, selection=[REGISTERED], ops=RELAXED_FLOOR, instance=instance)
    assert result.success
    metadata = recorded(result, REGISTERED)
    assert (metadata["training_set/key"], metadata["training_set/sha256"]) == (set_a.key, set_a.sha256)
    version = resources["mlflow"].client().get_model_version("flight_delay", metadata["version"])
    assert version.tags["training_set.key"] == set_a.key
    assert version.tags["training_set.sha256"] == set_a.sha256
    champion = champion_info(resources["mlflow"].client(), "flight_delay")
    assert champion.training_set_key == set_a.key  # the drift report's reference
    assert (home / "lake" / set_a.key).exists() and (home / "lake" / set_b.key).exists()


def test_registration_refuses_an_evaluation_record_of_another_set(home, instance, set_a, set_b):
    """A lake record rewritten to name B: refused against the instance's materialization (A), and, where
    the instance holds none, against the model's record (A)."""
    path = home / "lake/models/model_evaluation.json"
    original = path.read_text()
    record = json.loads(original)
    path.write_text(json.dumps({**record, "training_set": set_b.record()}))
    try:
        with_instance = run_training(
            training_resources(home), selection=[REGISTERED], instance=instance, raise_on_error=False
        )
        message = failure(with_instance, REGISTERED)
        assert "another run replaced the record" in message and set_b.sha256 in message, message
        records_only = run_training(training_resources(home), selection=[REGISTERED], raise_on_error=False)
        message = failure(records_only, REGISTERED)
        assert "models/flight_delay_model was made from training set" in message
        assert set_a.sha256 in message and set_b.sha256 in message, message
    finally:
        path.write_text(original)


def test_a_replaced_training_set_file_is_refused_by_its_hash(tmp_path, set_a, home):
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.training.data import load_training_data

    lake = LocalObjectStore(root=str(tmp_path / "lake"))
    frame = LocalObjectStore(root=str(home / "lake")).read_parquet(set_a.key)
    lake.write_parquet(set_a.key, frame)
    assert load_training_data(lake, **TRAINING_PLAN, identity=set_a).identity == set_a
    lake.write_parquet(set_a.key, frame.iloc[1:])  # one flight fewer under the same key
    with pytest.raises(dg.Failure, match=f"not {set_a.sha256} as recorded"):
        load_training_data(lake, **TRAINING_PLAN, identity=set_a)


def test_no_training_set_anywhere_is_a_clear_failure(tmp_path):
    result = run_training(training_resources(tmp_path), selection=[BASELINES], raise_on_error=False)
    message = failure(result, BASELINES)
    assert message.startswith("no training set: the instance holds no materialization of features/")
    assert "materialize features/training_set first" in message
