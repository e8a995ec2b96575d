"""models/registered_model: the MLflow registry; `challenger` always, `champion` only through the gate."""

import dagster as dg
from pydantic import Field

from mlops_assets.lib.keys import EVALUATION, MODEL, REGISTERED
from mlops_assets.lib.lineage import pinned_in_run, require_same
from mlops_assets.lib.records import consumed_metadata, written_metadata
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.tracking import MlflowResource
from mlops_assets.training.card import window_partitions
from mlops_assets.training.chain import CHAIN, GROUP, OWNERS, dagster_tags
from mlops_assets.training.records import consumed, write_training_record

GATE = "promotion_gate"


class RegistryConfig(dg.Config):
    min_auc_gain: float = Field(default=0.002, description="ROC-AUC the challenger must add to the champion.")
    ece_tolerance: float = Field(default=0.01, description="How much worse calibrated (ECE) it may be.")
    ece_acceptable: float = Field(
        default=0.0,
        description=(
            "An ECE at or below this passes the calibration rule whatever the champion's (0: off). Off by "
            "default: on April-December 2013 at 0.1 it let better-ranking but worse-calibrated versions "
            "serve, which raised the mean daily ROC-AUC and lowered the month's (bench/loop_bench.py)."
        ),
    )
    floor_baseline: str = Field(
        default="hist_gradient_boosting",
        description=(
            "The baseline the first model must beat (no champion yet): by default the trees of the "
            "validated grid, fitted on the training days only, the strongest plain competitor."
        ),
    )
    floor_margin: float = Field(default=0.0, description="ROC-AUC the first model must add to the floor.")
    shadow_days: int = Field(
        default=0,
        description=(
            "Days of shadow evidence (monitoring/shadow_comparison) a challenger needs besides the holdout "
            "gate before it replaces a champion. 0: the holdout gate alone promotes. Above 0 a version "
            "that passes the holdout stays `challenger` (gate `awaiting_shadow`) until "
            "`mlops model promote --version N` finds the evidence."
        ),
    )
    shadow_auc_tolerance: float = Field(
        default=0.0, description="How much lower the challenger's ROC-AUC may be on a shadow day."
    )
    shadow_log_loss_tolerance: float = Field(
        default=0.0, description="How much higher the challenger's log loss may be on a shadow day."
    )
    shadow_min_rows: int = Field(default=50, description="Labelled flights a shadow day needs to count.")


def write_card(context: dg.AssetExecutionContext, client, name: str, version: str) -> dg.MetadataValue:
    """The version's model card, logged to its run; the link for the materialization's metadata.

    The version is registered and its aliases moved by then, so a card that cannot be written fails
    nothing: the step warns, and `mlops model card --version N` builds the card from the registry."""
    from mlops_assets.training.card import log_card

    try:
        uri = log_card(client, name, version)
    except Exception as error:  # the registry changes above stand; say why the card is missing
        context.log.warning(f"no model card for version {version}: {error!r}")
        return dg.MetadataValue.text(f"not written ({type(error).__name__}); see the step's log")
    return dg.MetadataValue.url(uri)


@dg.asset(
    key=REGISTERED,
    deps=[EVALUATION],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            GATE,
            asset=REGISTERED,
            description="Did the challenger pass the gate? A refusal is a warning: "
            "the champion stays in service.",
        )
    ],
    description=(
        "Registers the new model as a version of `flight_delay` in the MLflow Model Registry and gives it "
        "the `challenger` alias. `champion` moves to it only when the gate passes: ROC-AUC on the holdout "
        "above the champion's by a margin and calibration (ECE) not worse; the first model must beat the "
        "floor baseline. Every alias move is recorded (`alias_history`). Every version gets a model card "
        "(`model_card` below, also `mlops model card --version N`). `mlops model promote|rollback` "
        "are the manual levers."
    ),
)
def registered_model(
    context: dg.AssetExecutionContext, config: RegistryConfig, mlflow: MlflowResource, lake: ObjectStore
) -> dg.MaterializeResult:
    import mlflow as mlflow_api

    from mlops_assets.training import registry

    evaluation_record, evaluated_on = consumed(context, lake, EVALUATION)
    model_record, model_on = consumed(context, lake, MODEL)
    evaluation, model = evaluation_record.body, model_record.body
    # Registration reads no training data: the set is the run's when an earlier step pinned it, else the
    # evaluation's, and the model must have learned from that one.
    resolved = pinned_in_run(context, CHAIN) or evaluated_on
    require_same(REGISTERED, resolved, {EVALUATION: evaluated_on, MODEL: model_on})
    if not evaluation["plausible"]:
        raise dg.Failure("the evaluation was not plausible; nothing is registered")
    metrics = evaluation["metrics"]
    if config.floor_baseline not in metrics:
        raise dg.Failure(
            f"floor baseline {config.floor_baseline!r} was not evaluated; have {sorted(metrics)}"
        )
    mlflow.activate()
    client = mlflow.client()
    candidate = metrics["candidate"]
    if model["run_id"] != evaluation["candidate"]["run_id"]:
        raise dg.Failure("models/flight_delay_model changed since the evaluation; evaluate it first")
    tags = {
        **dagster_tags(context),
        # Serving's decision rule travels with the version: late when probability >= this.
        registry.THRESHOLD_TAG: f"{model['decision_threshold']:.6f}",
        "training_set.key": resolved.identity.key,
        "training_set.sha256": resolved.identity.sha256,
        "training_window": "..".join(resolved.identity.window),
        "feature_service": resolved.identity.feature_service,
        "training_set.partitions": window_partitions("..".join(resolved.identity.window)),
        "holdout": evaluation["holdout"],
        # The rules the gate applies below, as they were at registration: the model card quotes them.
        "gate.rules": config.model_dump_json(),
        **{f"holdout_{k}": f"{v:.6f}" for k, v in candidate.items()},
    }
    champion_before = registry.alias_version(client, mlflow.model_name, registry.CHAMPION)
    # The evaluation scored the champion of its time on this holdout; if the alias moved since, the
    # gate would judge against stale figures, so nothing is registered until the evaluation reruns.
    if str(champion_before) != str(evaluation["champion_version"]):
        raise dg.Failure(
            f"the champion is version {champion_before} but the evaluation scored version "
            f"{evaluation['champion_version']}; materialize models/model_evaluation again"
        )
    registered = mlflow_api.register_model(evaluation["candidate"]["model_uri"], mlflow.model_name, tags=tags)
    version = str(registered.version)
    registry.move_alias(
        client,
        mlflow.model_name,
        registry.CHALLENGER,
        version,
        "register",
        context.run.run_id,
        "new model from the training graph",
    )
    decision = registry.gate(
        candidate,
        metrics.get("champion"),
        metrics[config.floor_baseline],
        config.floor_baseline,
        config.min_auc_gain,
        config.ece_tolerance,
        config.floor_margin,
        config.ece_acceptable,
    )
    # A new version has no shadow evidence yet: with shadow_days it waits as `challenger` for
    # the days to accumulate (the first champion has nothing to be compared with in the shadow).
    awaiting = decision.passed and config.shadow_days > 0 and champion_before is not None
    if awaiting:
        decision.reasons.append(
            f"needs {config.shadow_days} days of shadow evidence against version {champion_before}"
        )
        decision.passed = False
    status = "awaiting_shadow" if awaiting else "passed" if decision.passed else "refused"
    client.set_model_version_tag(mlflow.model_name, version, "gate", status)
    client.set_model_version_tag(
        mlflow.model_name, version, "gate_reasons", "; ".join(decision.reasons) or "-"
    )
    client.set_model_version_tag(mlflow.model_name, version, "gate.compared_with", decision.compared_with)
    client.set_model_version_tag(mlflow.model_name, version, "gate.champion_version", str(champion_before))
    if decision.passed:
        registry.promote(
            client,
            mlflow.model_name,
            version,
            context.run.run_id,
            f"gate passed against {decision.compared_with}",
        )
        context.log.info(f"version {version} is the new champion (was {champion_before})")
    else:
        context.log.warning(f"version {version} stays challenger: {'; '.join(decision.reasons)}")
    champion = registry.alias_version(client, mlflow.model_name, registry.CHAMPION)
    card = write_card(context, client, mlflow.model_name, version)
    record = {
        "model_name": mlflow.model_name,
        "version": version,
        "promoted": decision.passed,
        "awaiting_shadow": awaiting,
        "reasons": decision.reasons,
        "compared_with": decision.compared_with,
        "champion_before": champion_before,
        "champion": champion,
        "metrics": metrics,
        "training_set": resolved.identity.record(),
    }
    written = write_training_record(lake, REGISTERED, record, context)
    return dg.MaterializeResult(
        metadata={
            "model": mlflow.model_name,
            "version": version,
            "champion": str(champion),
            "champion_before": str(champion_before),
            "promoted": decision.passed,
            "gate": status,
            "compared_with": decision.compared_with,
            "candidate/roc_auc": dg.MetadataValue.float(round(candidate["roc_auc"], 4)),
            "alias_history": dg.MetadataValue.json(registry.history(client, mlflow.model_name)[-5:]),
            "load_with": f'mlflow.pyfunc.load_model("models:/{mlflow.model_name}@champion")',
            "model_card": card,
            "model_card_command": f"mlops model card --version {version}",
            **resolved.metadata(),
            **written_metadata(written),
            **consumed_metadata([evaluation_record, model_record]),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=GATE,
                passed=decision.passed,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "compared_with": decision.compared_with,
                    "reasons": "; ".join(decision.reasons) or "-",
                },
            )
        ],
    )
