"""Model cards and reproductions of registered versions, on the three-week training window.

One home (a copy of the session's training home, with its own Feast registry and MLflow store) where the
training graph registers version 1 with a small ensemble. Then:
1. its card (written at registration and built again by `mlops model card`) shows the registry's figures;
2. `mlops model card` of a version that does not exist fails with a clear message and a non-zero exit;
3. `mlops model reproduce` rebuilds the set, retrains and gets the same holdout metrics, bit for bit;
4. a version whose recorded training-set hash no longer matches its partitions' data is refused.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import TRAINING_WINDOW, _without_state
from tests.test_training import RELAXED_FLOOR, TRAINING_KEYS, metadata, run_training, training_resources

# Two networks and a short epoch budget: enough for a real version in seconds.
QUICK = {"models__flight_delay_model": {"config": {"ensemble_size": 2, "max_epochs": 3}}}
REGISTERED = TRAINING_KEYS[4]


@pytest.fixture(scope="module")
def registered(training_set_home: Path, tmp_path_factory):
    """(home, resources, result): version 1 registered by the training graph in a home of its own."""
    from mlops_assets.defs.features.feast_assets import build_feast_assets
    from mlops_assets.resources.feature_store import FeastResource
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.resources.warehouse import DuckDBWarehouse

    home = tmp_path_factory.mktemp("card_home")
    shutil.copytree(training_set_home, home, dirs_exist_ok=True, ignore=_without_state(training_set_home))
    # The Feast registry: a reproduction joins the features again through it.
    applied = dg.materialize(
        build_feast_assets(),
        selection=[dg.AssetKey(["features", "feature_views"])],
        resources={
            "feast": FeastResource(profile="local", home=str(home)),
            "lake": LocalObjectStore(root=str(home / "lake")),
            "warehouse": DuckDBWarehouse(path=str(home / "warehouse.duckdb")),
        },
    )
    assert applied.success
    resources = training_resources(home)
    result = run_training(resources, ops={**RELAXED_FLOOR, **QUICK})
    assert result.success
    return home, resources, result


@pytest.fixture
def cli_home(registered, monkeypatch):
    home = registered[0]
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_PROFILE", "local")
    return home


def _row(card: str, first_cell: str) -> list[str]:
    """The cells of the card's table row that starts with `first_cell`."""
    for line in card.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == first_cell:
            return cells[1:]
    raise AssertionError(f"no row {first_cell!r} in the card")


HOLDOUT_COLUMNS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "positive_rate", "mean_prediction")


def test_card_shows_the_registered_figures(registered, cli_home, capsys, tmp_path):
    from mlops_assets.cli import main

    _, resources, result = registered
    client = resources["mlflow"].client()
    version = client.get_model_version("flight_delay", "1")
    run = client.get_run(version.run_id)

    assert main(["model", "card", "--version", "1"]) == 0
    card = capsys.readouterr().out
    own = _row(card, "**this version (v1)**")
    assert own == [f"{run.data.metrics[f'holdout_{m}']:.4f}" for m in HOLDOUT_COLUMNS]
    # The version's tags (what serving and the drift report read) say the same, to their 6 decimals.
    assert own[0] == f"{float(version.tags['holdout_roc_auc']):.4f}"
    # The baselines' rows are the figures the evaluation logged to each baseline's own run.
    for family in ("logistic_regression", "hist_gradient_boosting"):
        [baseline] = client.search_runs(
            [run.info.experiment_id],
            f"tags.`dagster.run_id` = '{result.run_id}' and tags.model_family = '{family}'",
        )
        assert _row(card, family) == [f"{baseline.data.metrics[f'holdout_{m}']:.4f}" for m in HOLDOUT_COLUMNS]
    assert f"training set sha256: `{version.tags['training_set.sha256']}`" in card
    assert f"training window: {'..'.join(TRAINING_WINDOW)}" in card
    assert run.data.tags["feature_service"] == "flight_delay_v2"  # the default training set's
    assert f"feature service: `{run.data.tags['feature_service']}`" in card
    # The trees (the default family): their configuration, not the network's.
    assert run.data.tags["model_family"] == "gradient_boosting"
    assert f"| trees.learning_rate | {run.data.params['trees.learning_rate']} |" in card
    assert f"| calibration_days | {run.data.params['calibration_days']} |" in card
    assert "| width |" not in card and "Tuned by Ray Tune" not in card
    # The first version has no champion: the gate compared it with the floor baseline.
    assert version.tags["gate.compared_with"] in ("logistic_regression", "hist_gradient_boosting")
    assert f"decision: **{version.tags['gate']}**" in card
    assert f"compared with: {version.tags['gate.compared_with']}" in card
    assert "<svg" in card and "<polyline" in card  # the calibration plot, drawn from the logged table
    assert _row(card, "JFK") and _row(card, "UA")  # per origin and per carrier
    assert "February 2013 - December 2013" in card and "It saw only part of: January 2013" in card

    # Registration logged the card to the version's run and linked it from its materialization.
    link = metadata(result, REGISTERED)["model_card"]
    assert link == version.tags["model_card"] and link.endswith("model_card/model_card.html")
    logged = Path(client.download_artifacts(version.run_id, "model_card/model_card.md", str(tmp_path)))
    assert _row(logged.read_text(), "**this version (v1)**") == own

    page = tmp_path / "card.html"
    assert main(["model", "card", "--version", "1", "--html", str(page)]) == 0
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<table>" in html and "<svg" in html
    assert f"<td>{own[0]}</td>" in html


def test_card_of_a_version_registered_before_cards_says_what_is_missing(registered):
    """A version whose run lacks the newer records (per-origin table, calibration table, the gate's
    rules) still gets a card: the evaluation's PNG inline, and 'not recorded' where a table is missing."""
    from mlops_assets.training.card import build_markdown
    from mlops_assets.training.card_facts import read_facts

    _, resources, _ = registered
    facts = read_facts(resources["mlflow"].client(), "flight_delay", "1")
    assert facts.calibration_png is not None and set(facts.tables) == {
        "comparison", "by_carrier", "by_origin", "calibration"
    }  # fmt: skip
    for newer in ("by_origin", "calibration"):
        del facts.tables[newer]
    for tag in ("gate.rules", "gate.compared_with", "training_set.partitions"):
        del facts.version_tags[tag]
    card = build_markdown(facts)
    assert "## Per origin airport\n\nNot recorded for version 1." in card
    assert '<img alt="Calibration on the holdout" src="data:image/png;base64,' in card and "<svg" not in card
    assert "- compared with: -" in card and "- rules:" not in card
    assert "partitions: 2013-01-01..2013-01-21: 21 daily partitions" in card  # derived from the window
    assert _row(card, "UA")  # what was recorded is still there


def test_card_of_an_unknown_version_fails_clearly(cli_home):
    completed = subprocess.run(
        [sys.executable, "-m", "mlops_assets.cli", "model", "card", "--version", "7"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        timeout=300,
    )
    assert completed.returncode != 0
    assert "registered model 'flight_delay' has no version 7 (it has versions 1)" in completed.stderr
    assert completed.stdout == ""


def test_reproduce_gives_the_same_holdout_metrics(registered, cli_home, capsys):
    from mlops_assets.cli import main

    _, resources, _ = registered
    client = resources["mlflow"].client()
    run = client.get_run(client.get_model_version("flight_delay", "1").run_id)

    assert main(["model", "reproduce", "--version", "1"]) == 0
    printed = capsys.readouterr().out
    assert "same training set: sha256" in printed
    assert "reproduced: version 1 on cpu, tolerance 0" in printed
    rows = {}
    for line in printed.splitlines():
        parts = line.split()
        if len(parts) == 4 and re.fullmatch(r"-?\d+\.\d{6}", parts[1]):
            rows[parts[0]] = (float(parts[1]), float(parts[2]))
    assert set(rows) >= {"roc_auc", "log_loss", "ece", "rows", "decision_threshold"}
    for metric, (registered_value, reproduced) in rows.items():
        assert registered_value == reproduced, metric
        recorded = run.data.metrics[
            "decision_threshold" if metric == "decision_threshold" else f"holdout_{metric}"
        ]
        assert f"{recorded:.6f}" == f"{registered_value:.6f}", metric


def test_reproduce_refuses_a_training_set_that_changed(registered, cli_home):
    from mlops_assets.cli import main

    _, resources, _ = registered
    client = resources["mlflow"].client()
    recorded = client.get_model_version("flight_delay", "1").tags["training_set.sha256"]
    # As if the version had learned from other data than its partitions now hold.
    client.set_model_version_tag("flight_delay", "1", "training_set.sha256", "0" * 64)
    try:
        with pytest.raises(SystemExit) as stopped:
            main(["model", "reproduce", "--version", "1"])
    finally:
        client.set_model_version_tag("flight_delay", "1", "training_set.sha256", recorded)
    message = str(stopped.value.code)
    assert message.startswith("cannot reproduce flight_delay version 1: the training set rebuilt from")
    assert f"has sha256 {recorded}" in message and f"recorded {'0' * 64}" in message
