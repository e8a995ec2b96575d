"""What a model card says, read from the MLflow registry alone: the version and its tags, its run's params,
metrics and tags, and the evaluation's tables logged to that run (evaluation/*.csv).

Nothing here reads the lake or the Dagster instance: a card can be rebuilt wherever the registry is
reachable, and it says what the registry holds, not what a later run wrote.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_assets.training.evaluation import EVALUATION_ARTIFACTS

# The evaluation's tables in the model's run (see models/model_evaluation); a version registered before a
# table was logged simply has no such section in its card.
TABLES = {
    "comparison": "holdout_comparison.csv",
    "by_carrier": "holdout_by_carrier.csv",
    "by_origin": "holdout_by_origin.csv",
    "calibration": "holdout_calibration.csv",
}
CALIBRATION_PNG = "calibration.png"


class VersionNotFound(LookupError):
    """The registered model has no such version."""


@dataclass
class CardFacts:
    name: str
    version: str
    run_id: str
    created_ms: int
    aliases: list[str]
    version_tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    run_tags: dict[str, str]
    # evaluation tables by TABLES key: rows of strings as the CSV holds them
    tables: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    calibration_png: bytes | None = None

    def tag(self, name: str) -> str | None:
        """A tag of the version, else of its run (versions registered before a tag was copied over)."""
        return self.version_tags.get(name) or self.run_tags.get(name)


def model_version(client: Any, name: str, version: str | int) -> Any:
    """The registry's ModelVersion, or VersionNotFound naming the versions that exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        pass
    try:
        known = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    except MlflowException:
        known = []
    have = f"versions {', '.join(map(str, known))}" if known else "no versions"
    raise VersionNotFound(f"registered model {name!r} has no version {version} (it has {have})")


def read_facts(client: Any, name: str, version: str | int) -> CardFacts:
    """Everything the card shows about `version` of `name`, from the registry and the version's run."""
    found = model_version(client, name, version)
    run = client.get_run(found.run_id)
    facts = CardFacts(
        name=name,
        version=str(found.version),
        run_id=found.run_id,
        created_ms=int(found.creation_timestamp or 0),
        aliases=sorted(getattr(found, "aliases", None) or []),
        version_tags=dict(found.tags or {}),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        run_tags=dict(run.data.tags),
    )
    # MLflow draws a progress bar per download on stderr: five bars of noise around a card.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory(prefix="model_card_") as scratch:
        for key, file in TABLES.items():
            path = _download(client, found.run_id, f"{EVALUATION_ARTIFACTS}/{file}", scratch)
            if path is not None:
                facts.tables[key] = _read_csv(path)
        png = _download(client, found.run_id, f"{EVALUATION_ARTIFACTS}/{CALIBRATION_PNG}", scratch)
        facts.calibration_png = png.read_bytes() if png is not None else None
    return facts


def _download(client: Any, run_id: str, artifact: str, scratch: str) -> Path | None:
    """The run's artifact as a local file, None when the run has no such artifact."""
    folder, _, file = artifact.rpartition("/")
    if file not in {Path(a.path).name for a in client.list_artifacts(run_id, folder)}:
        return None
    return Path(client.download_artifacts(run_id, artifact, scratch))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))
