"""The model registry's rules: register a challenger, promote only through the gate, roll back, audit.

Aliases are MLflow 3's (`challenger`, `champion`); stages are deprecated. Every alias move is appended to
the registered model's tag `alias_history` (JSON) and stamped on the version's tags, so who promoted what,
when and why can always be read back.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "alias_history"
HISTORY_LIMIT = 200  # events kept in the tag (MLflow tag values are bounded)


@dataclass
class GateDecision:
    passed: bool
    compared_with: str
    reasons: list[str] = field(default_factory=list)


def gate(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    floor: dict[str, float],
    floor_name: str,
    min_auc_gain: float,
    ece_tolerance: float,
    floor_margin: float = 0.0,
    ece_acceptable: float = 0.0,
) -> GateDecision:
    """Better than the champion by `min_auc_gain` ROC-AUC and not worse calibrated (ECE within
    `ece_tolerance`), unless its ECE is at most `ece_acceptable`. With no champion yet, the same
    against the floor baseline, which the first model must beat by `floor_margin` (strictly, when 0).

    Why an acceptable ECE: both are scored on the last 14 days, whose late rate moves from week to week
    (April 2013: 7 % to 57 % a day), and each was calibrated on an earlier week, so which of the two is
    better calibrated there says as much about the weeks as about the models. 0 (the default) keeps the
    comparison alone; what 0.1 did to a year's replay is in docs/loop.md (the loop's worth)."""
    if champion is not None:
        reference, name, margin = champion, CHAMPION, min_auc_gain
    else:
        reference, name, margin = floor, floor_name, floor_margin
    reasons = []
    needed = reference["roc_auc"] + margin
    beats = candidate["roc_auc"] > needed if margin == 0 else candidate["roc_auc"] >= needed
    if not beats:
        reasons.append(
            f"roc_auc {candidate['roc_auc']:.4f} does not beat {name} {reference['roc_auc']:.4f} + {margin}"
        )
    calibrated = candidate["ece"] <= reference["ece"] + ece_tolerance or candidate["ece"] <= ece_acceptable
    if not calibrated:
        reasons.append(
            f"ece {candidate['ece']:.4f} > {name} {reference['ece']:.4f} + {ece_tolerance}"
            + (f" and > {ece_acceptable}" if ece_acceptable else "")
        )
    return GateDecision(passed=not reasons, compared_with=name, reasons=reasons)


@dataclass(frozen=True)
class ShadowRules:
    """How much shadow evidence promotion needs: the `days` most recent days on which the challenger and
    the champion were compared on the same flights (monitoring/shadow_comparison) must each show the
    challenger not worse: ROC-AUC at most `auc_tolerance` below, log loss at most `log_loss_tolerance`
    above, on at least `min_rows` labelled flights. 0 days: no shadow evidence needed (the default)."""

    days: int = 0
    auc_tolerance: float = 0.0
    log_loss_tolerance: float = 0.0
    min_rows: int = 50


def shadow_gate(
    records: list[dict], champion_version: str, candidate_version: str, rules: ShadowRules
) -> GateDecision:
    """Whether the shadow comparisons of `candidate_version` against `champion_version` (records of
    monitoring/shadow_comparison, any order) meet `rules`; days of other version pairs do not count."""
    name = f"{CHAMPION} v{champion_version} in the shadow"
    if rules.days <= 0:
        return GateDecision(passed=True, compared_with=name)
    evidence = sorted(
        (
            r
            for r in records
            if r.get("compared")
            and str(r.get("champion_version")) == str(champion_version)
            and str(r.get("challenger_version")) == str(candidate_version)
            and r.get("rows", 0) >= rules.min_rows
        ),
        key=lambda r: r["day"],
    )[-rules.days :]
    if len(evidence) < rules.days:
        return GateDecision(
            passed=False,
            compared_with=name,
            reasons=[
                f"{len(evidence)} of {rules.days} days of shadow evidence (>= {rules.min_rows} flights)"
            ],
        )
    reasons = []
    for r in evidence:
        challenger, champion = r["challenger"], r["champion"]
        if not challenger["roc_auc"] >= champion["roc_auc"] - rules.auc_tolerance:
            reasons.append(
                f"{r['day']}: roc_auc {challenger['roc_auc']:.4f} < {champion['roc_auc']:.4f} - "
                f"{rules.auc_tolerance}"
            )
        if not challenger["log_loss"] <= champion["log_loss"] + rules.log_loss_tolerance:
            reasons.append(
                f"{r['day']}: log_loss {challenger['log_loss']:.4f} > {champion['log_loss']:.4f} + "
                f"{rules.log_loss_tolerance}"
            )
    return GateDecision(passed=not reasons, compared_with=name, reasons=reasons)


def shadow_rules(tags: Mapping[str, str]) -> ShadowRules:
    """The shadow rules a version was registered under (its `gate.rules` tag, RegistryConfig's fields);
    none needed for a version registered before them or without them."""
    try:
        rules = json.loads(tags.get("gate.rules") or "{}")
    except ValueError:
        rules = {}
    return ShadowRules(
        days=int(rules.get("shadow_days", 0)),
        auc_tolerance=float(rules.get("shadow_auc_tolerance", 0.0)),
        log_loss_tolerance=float(rules.get("shadow_log_loss_tolerance", 0.0)),
        min_rows=int(rules.get("shadow_min_rows", ShadowRules.min_rows)),
    )


def alias_version(client, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def history(client, name: str) -> list[dict]:
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(name).tags
    except MlflowException:
        return []
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def move_alias(client, name: str, alias: str, version: str, action: str, by: str, reason: str) -> dict:
    """Point `alias` at `version` and record the move (previous holder included)."""
    previous = alias_version(client, name, alias)
    client.set_registered_model_alias(name, alias, str(version))
    event = {
        "alias": alias,
        "version": str(version),
        "previous": previous,
        "action": action,
        "by": by,
        "reason": reason,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    events = ([*history(client, name), event])[-HISTORY_LIMIT:]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(events))
    client.set_model_version_tag(name, str(version), f"{alias}_since", event["at"])
    return event


def promote(client, name: str, version: str, by: str, reason: str) -> dict:
    """Make `version` the champion (the gate already passed, or a person decided so)."""
    client.get_model_version(name, str(version))  # fails clearly for a version that does not exist
    return move_alias(client, name, CHAMPION, str(version), "promote", by, reason)


def rollback(client, name: str, by: str) -> dict:
    """Give `champion` back to the version that held it before the current one."""
    current = alias_version(client, name, CHAMPION)
    if current is None:
        raise LookupError(f"registered model {name!r} has no {CHAMPION} to roll back")
    # The promotion that made the current champion says who held the alias before it; a rollback's own
    # event is skipped, so rolling back twice walks further back instead of undoing the first rollback.
    moves = [
        e
        for e in history(client, name)
        if e["alias"] == CHAMPION and e["version"] == current and e["action"] == "promote"
    ]
    previous = moves[-1]["previous"] if moves else None
    if previous is None:
        raise LookupError(
            f"{name} version {current} is the first {CHAMPION}: there is nothing to roll back to"
        )
    return move_alias(client, name, CHAMPION, previous, "rollback", by, f"rolled back from version {current}")


@dataclass(frozen=True)
class ChampionInfo:
    """What consumers of the champion need besides its weights: which version, its decision rule, and
    the data it learned from (the drift report's reference)."""

    version: str
    model_uri: str
    run_id: str
    decision_threshold: float
    training_set_key: str | None
    training_window: str | None
    holdout_roc_auc: float | None


THRESHOLD_TAG = "decision_threshold"
# 23% of flights arrive late: at 0.5 the model would call almost none of them. 0.3 is a default only for
# versions registered without a threshold chosen on validation days (the `decision_threshold` tag).
DEFAULT_THRESHOLD = 0.3


def decision_threshold(tags: Mapping[str, str], default: float = DEFAULT_THRESHOLD) -> tuple[float, str]:
    """The version's tag when it is a probability strictly between 0 and 1, else `default`, with where
    the value came from ("model_version_tag" or "service_default"). Batch and online scoring both
    decide with this, so a version's decisions are the same wherever it serves."""
    text = tags.get(THRESHOLD_TAG)
    if text is not None:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if 0.0 < value < 1.0:
            return value, "model_version_tag"
        log.warning(f"ignoring tag {THRESHOLD_TAG}={text!r}: not a probability; using {default}")
    return default, "service_default"


def champion_info(client, name: str, alias: str = CHAMPION) -> ChampionInfo | None:
    """The version behind `alias` with its tags, or None when the alias is not set."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    run = client.get_run(version.run_id)

    def number(text: str | None) -> float | None:
        return float(text) if text not in (None, "") else None

    return ChampionInfo(
        version=str(version.version),
        model_uri=f"models:/{name}/{version.version}",
        run_id=version.run_id,
        decision_threshold=decision_threshold(version.tags)[0],
        training_set_key=version.tags.get("training_set.key") or run.data.tags.get("training_set.key"),
        training_window=version.tags.get("training_window") or run.data.tags.get("training_window"),
        holdout_roc_auc=number(version.tags.get("holdout_roc_auc")),
    )
