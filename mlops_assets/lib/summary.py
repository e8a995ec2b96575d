"""A plain-text account of what the lake holds: rows stored and quarantined per table."""

from __future__ import annotations

from pathlib import Path

from mlops_assets.resources.storage import ObjectStore


def lake_summary(lake: ObjectStore) -> list[str]:
    import pyarrow.parquet as pq

    lines = [
        f"lake: {lake.uri('')}",
        f"{'table':<10} {'partitions':>10} {'rows stored':>12} {'quarantined':>12}",
    ]
    raw = [o for o in lake.list_objects("raw/") if o.key.endswith(".parquet")]
    for table in ("airlines", "airports", "planes", "flights", "weather"):
        stored = [o for o in raw if o.key == f"raw/{table}.parquet" or o.key.startswith(f"raw/{table}/")]
        rows = sum(_row_count(lake, o.key, pq) for o in stored)
        rejected = [o for o in lake.list_objects(f"quarantine/{table}/rows/") if o.key.endswith(".parquet")]
        quarantined = sum(_row_count(lake, o.key, pq) for o in rejected)
        files = len(
            [o for o in lake.list_objects(f"quarantine/{table}/files/") if o.key.endswith("reason.json")]
        )
        extra = f"  (+{files} whole file(s))" if files else ""
        lines.append(f"{table:<10} {len(stored):>10} {rows:>12} {quarantined:>12}{extra}")
    return lines


def features_summary(lake: ObjectStore) -> list[str]:
    """Feature days written by Spark, and the training sets built from them."""
    import pyarrow.parquet as pq

    days = [o for o in lake.list_objects("features/flight_schedule/") if o.key.endswith(".parquet")]
    sets = [o for o in lake.list_objects("features/training_set/") if o.key.endswith(".parquet")]
    lines = [f"features: {len(days)} day(s) of schedule, delay stats and weather"] if days else []
    for item in sets:
        lines.append(f"training set: {lake.uri(item.key)} ({_row_count(lake, item.key, pq)} rows)")
    return lines


def warehouse_summary(path: Path) -> list[str]:
    """What the dbt mart holds (local profile: the DuckDB warehouse file)."""
    if not path.exists():
        return []
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        flights, days, labelled, late = con.execute(
            "select count(*), count(distinct flight_date), count(label_late), coalesce(sum(label_late), 0) "
            "from marts.fct_flights"
        ).fetchone()
    share = f"{late / labelled:.1%}" if labelled else "n/a"
    return [
        f"warehouse: {path}",
        f"fct_flights: {flights} flights, {days} day(s); {labelled} labelled, {share} arrived >15 min late",
    ]


def _row_count(lake: ObjectStore, key: str, pq) -> int:
    import io

    return pq.ParquetFile(io.BytesIO(lake.read_bytes(key))).metadata.num_rows


def models_summary(lake: ObjectStore) -> list[str]:
    """The last registration and the holdout figures of every model evaluated with it."""
    import json

    if not lake.exists("models/registered_model.json"):
        return []
    registered = json.loads(lake.read_bytes("models/registered_model.json"))
    outcome = (
        "promoted to champion"
        if registered["promoted"]
        else "kept as challenger: " + "; ".join(registered["reasons"])
    )
    lines = [
        f"model registry: {registered['model_name']} version {registered['version']} {outcome}",
        f"champion: version {registered['champion']} "
        f'(mlflow.pyfunc.load_model("models:/{registered["model_name"]}@champion"))',
        "holdout metrics (same rows for every model):",
        f"  {'model':<24}{'roc_auc':>9}{'pr_auc':>9}{'log_loss':>10}{'brier':>8}{'ece':>8}",
    ]
    names = {"candidate": f"pytorch v{registered['version']}", "champion": "previous champion"}
    for model, m in registered["metrics"].items():
        lines.append(
            f"  {names.get(model, model):<24}{m['roc_auc']:>9.4f}{m['pr_auc']:>9.4f}{m['log_loss']:>10.4f}"
            f"{m['brier']:>8.4f}{m['ece']:>8.4f}"
        )
    return lines


def registry_summary(client, name: str) -> list[str]:
    """Every registered version: its training window, holdout ROC-AUC and the gate's verdict."""
    from mlops_assets.training.registry import CHALLENGER, CHAMPION, alias_version

    versions = sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
    if not versions:
        return []
    aliases = {alias_version(client, name, a): a for a in (CHALLENGER, CHAMPION)}
    lines = [f"model versions of {name}:"]
    for v in versions:
        tags = v.tags
        auc = tags.get("holdout_roc_auc")
        lines.append(
            f"  v{v.version:<3} window {tags.get('training_window', '?'):<24} holdout roc_auc "
            f"{float(auc):.4f}  gate {tags.get('gate', '?'):<8} {aliases.get(str(v.version), '')}"
            if auc
            else f"  v{v.version:<3} {tags.get('training_window', '?')}"
        )
    return lines


def monitoring_summary(lake: ObjectStore) -> list[str]:
    """Drift and quality per monitored day, then the retraining events."""
    from mlops_assets.lib.keys import DRIFT_REPORT, MODEL_PERFORMANCE
    from mlops_assets.monitoring.records import read_records
    from mlops_assets.monitoring.retraining import retraining_events

    drift = {r["day"]: r for r in read_records(lake, DRIFT_REPORT)}
    quality = {r["day"]: r for r in read_records(lake, MODEL_PERFORMANCE)}
    lines = []
    if drift or quality:
        lines += [
            "monitoring per day (drift: share of features drifted; prediction: the probability's drift):",
            f"  {'day':<12}{'model':>6}{'flights':>8}{'drift':>7}{'prediction':>11}{'roc_auc':>9}"
            "  most drifted",
        ]
        for day in sorted(set(drift) | set(quality)):
            d, q = drift.get(day, {}), quality.get(day, {})
            auc = q.get("metrics", {}).get("roc_auc")
            lines.append(
                f"  {day:<12}{'v' + str(d.get('model_version') or q.get('model_version')):>6}"
                f"{d.get('current_rows', 0):>8}{d.get('drift_share', float('nan')):>7.2f}"
                f"{d.get('prediction_drift', float('nan')):>11.3f}"
                f"{auc if auc is not None else float('nan'):>9.4f}  {', '.join(d.get('drifted', [])[:3])}"
            )
    events = retraining_events(lake)
    if events:
        lines.append("retraining events:")
        lines += [
            f"  {e['requested_at']} ({e['trigger']}) window {'..'.join(e['window'])}: {e['reason']}"
            for e in events
        ]
    return lines
