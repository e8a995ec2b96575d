"""A registered version's model card: Markdown built from what the registry records (card_facts), rendered
to HTML, logged to the version's run as `model_card/model_card.{md,html}`.

`models/registered_model` writes it for every version it registers and links it from its
materialization; `mlops model card --version N` builds it again from the registry at any time.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import tempfile
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from mlops_assets.lib.calendar import FIRST_DAY, LAST_DAY
from mlops_assets.training.calibration_svg import calibration_svg
from mlops_assets.training.card_facts import CardFacts, read_facts

CARD_FOLDER = "model_card"
MARKDOWN_FILE, HTML_FILE = "model_card.md", "model_card.html"
CARD_TAG = "model_card"  # the version's tag: where its card is
METRICS = (
    ("roc_auc", "ROC-AUC"),
    ("pr_auc", "PR-AUC"),
    ("log_loss", "log loss"),
    ("brier", "Brier"),
    ("ece", "ECE"),
    ("positive_rate", "late rate"),
    ("mean_prediction", "mean prediction"),
)
HYPERPARAMETERS = (
    "learning_rate",
    "width",
    "depth",
    "dropout",
    "batch_size",
    "embedding_dim",
    "weight_decay",
    "max_epochs",
    "patience",
    "ensemble_size",
    "seed",
)


def figure(value: Any) -> str:
    """A metric as the card prints it (4 decimals), '-' when there is none."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if number != number else f"{number:.4f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def build_markdown(facts: CardFacts) -> str:
    sections = [
        _header(facts),
        _training_data(facts),
        _hyperparameters(facts),
        _holdout(facts),
        _calibration(facts),
        _groups(facts, "by_carrier", "carrier", "Per carrier"),
        _groups(facts, "by_origin", "origin", "Per origin airport"),
        _gate(facts),
        _use_and_limits(facts),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _header(facts: CardFacts) -> str:
    created = dt.datetime.fromtimestamp(facts.created_ms / 1000, dt.UTC).isoformat(timespec="seconds")
    aliases = ", ".join(f"`{a}`" for a in facts.aliases) or "none"
    family = facts.run_tags.get("model_family", "pytorch_tabular")
    control = ""
    if facts.tag("negative_control") == "true":
        control = " **Negative control: trained on shuffled labels.**"
    return "\n".join(
        [
            f"# Model card: `{facts.name}` version {facts.version}",
            "",
            f"Predicts, two hours before scheduled departure, the probability that a flight out of New York "
            f"arrives more than 15 minutes late ({family}).{control}",
            "",
            f"- registered: {created}; aliases when this card was built: {aliases}",
            f"- model: `models:/{facts.name}/{facts.version}`; MLflow run `{facts.run_id}`",
            f"- Dagster run: `{facts.tag('dagster.run_id') or '-'}`; device: {facts.tag('device') or '-'}",
            f"- decision threshold (late when probability >= it, chosen on the validation days): "
            f"{figure(facts.tag('decision_threshold'))}",
        ]
    )


def _training_data(facts: CardFacts) -> str:
    window = facts.tag("training_window") or "-"
    partitions = facts.tag("training_set.partitions") or window_partitions(window)
    split = [
        (part, facts.params.get(f"{part}_days", "-"), facts.params.get(f"{part}_rows", "-"))
        for part in ("train", "valid", "holdout")
    ]
    return "\n".join(
        [
            "## Training data",
            "",
            f"- training window: {window}",
            f"- partitions: {partitions}",
            f"- feature service: `{facts.tag('feature_service') or '-'}`",
            f"- training set: `{facts.tag('training_set.key') or '-'}`",
            f"- training set sha256: `{facts.tag('training_set.sha256') or '-'}`",
            "",
            table(["part", "days", "rows"], split),
            "",
            "The network learned from the train days, stopped early on the valid days, and was judged on the "
            "holdout days, which no model saw before the evaluation.",
        ]
    )


def window_partitions(window: str) -> str:
    """The daily partitions of fct_flights and features/flight_features a window reads."""
    if ".." not in window:
        return "-"
    first, last = (dt.date.fromisoformat(day) for day in window.split(".."))
    days = (last - first).days + 1
    return f"{first}..{last}: {days} daily partitions of fct_flights and features/flight_features"


def _hyperparameters(facts: CardFacts) -> str:
    """The chosen family's: the network's (tuned) or the trees' (`trees.*`, chosen from the baselines'
    grid, and the days their calibration learned from)."""
    if facts.run_tags.get("model_family", "pytorch_tabular") == "gradient_boosting":
        names = [name for name in facts.params if name.startswith("trees.")] + ["calibration_days"]
    else:
        names = list(HYPERPARAMETERS)
    rows = [(name, facts.params[name]) for name in names if name in facts.params]
    tuning = facts.tag("tuning_run_id")
    note = f"\n\nTuned by Ray Tune (MLflow run `{tuning}`)." if tuning else ""
    return "## Hyperparameters\n\n" + table(["name", "value"], rows) + note


def _holdout(facts: CardFacts) -> str:
    champion = facts.tag("gate.champion_version")
    names = {"champion": f"champion (v{champion})" if champion not in (None, "", "None") else "champion"}
    own = [figure(facts.metrics.get(f"holdout_{k}")) for k, _ in METRICS]
    rows = [[f"**this version (v{facts.version})**", *own]]
    for row in facts.tables.get("comparison", []):
        if row["model"] != "candidate":
            rows.append([names.get(row["model"], row["model"]), *(figure(row.get(k)) for k, _ in METRICS)])
    holdout = facts.tag("holdout") or facts.params.get("holdout_days", "-")
    count = figure(facts.metrics.get("holdout_rows")).removesuffix(".0000")
    return "\n".join(
        [
            "## Holdout metrics",
            "",
            f"Every model on the same holdout rows ({holdout}, {count} flights): this version, the champion "
            "it was compared with (when there was one) and the baselines.",
            "",
            table(["model", *(label for _, label in METRICS)], rows),
        ]
    )


def _calibration(facts: CardFacts) -> str:
    rows = facts.tables.get("calibration")
    title = "Calibration on the holdout"
    if rows:
        curves: dict[str, list[tuple[float, float]]] = {}
        for row in rows:
            name = "this version" if row["model"] == "candidate" else row["model"]
            curves.setdefault(name, []).append((float(row["mean_predicted"]), float(row["observed"])))
        figure_html = calibration_svg(curves, title)
    elif facts.calibration_png:
        # Versions evaluated before the calibration table was logged: the evaluation's own PNG, inline.
        data = base64.b64encode(facts.calibration_png).decode()
        figure_html = f'<img alt="{title}" src="data:image/png;base64,{data}"/>'
    else:
        return f"## Calibration\n\nNo calibration data was logged for version {facts.version}."
    return (
        "## Calibration\n\nMean predicted probability against the observed late rate, per probability "
        f"bin; the diagonal is perfect calibration.\n\n<div>\n{figure_html}\n</div>"
    )


def _groups(facts: CardFacts, key: str, column: str, title: str) -> str:
    rows = [row for row in facts.tables.get(key, []) if row["model"] == "candidate"]
    if not rows:
        return f"## {title}\n\nNot recorded for version {facts.version}."
    body = [
        [row[column], row["rows"].removesuffix(".0"), *(figure(row.get(k)) for k, _ in METRICS[:5])]
        for row in sorted(rows, key=lambda r: -float(r["rows"]))
    ]
    return f"## {title}\n\nThis version on the holdout, groups with at least 50 flights.\n\n" + table(
        [column, "flights", *(label for _, label in METRICS[:5])], body
    )


def _gate(facts: CardFacts) -> str:
    decision = facts.tag("gate") or "not recorded"
    reasons = facts.tag("gate_reasons") or "-"
    compared = facts.tag("gate.compared_with") or "-"
    champion = facts.tag("gate.champion_version")
    if compared == "champion" and champion not in (None, "", "None"):
        compared = f"champion (version {champion})"
    lines = [
        "## Promotion gate",
        "",
        f"- decision: **{decision}**",
        f"- compared with: {compared}",
        f"- reasons: {'none: every rule passed' if decision == 'passed' else reasons}",
    ]
    rules = facts.tag("gate.rules")
    if rules:
        lines.append("- rules: " + ", ".join(f"{k} = {v}" for k, v in json.loads(rules).items()))
    return "\n".join(lines)


def _months(first: dt.date, last: dt.date) -> list[tuple[int, int]]:
    months, day = [], first.replace(day=1)
    while day <= last:
        months.append((day.year, day.month))
        day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return months


def unseen_months(window: str) -> tuple[list[str], list[str]]:
    """(months of the data set with no day in the window, months only partly in it), as 'March 2013'."""
    first, last = (dt.date.fromisoformat(day) for day in window.split(".."))
    inside = set(_months(first, last))
    never = [m for m in _months(FIRST_DAY, LAST_DAY) if m not in inside]
    partial = [
        (y, m)
        for y, m in sorted(inside)
        if ((y, m) == (first.year, first.month) and first.day > 1)
        or ((y, m) == (last.year, last.month) and (last + dt.timedelta(days=1)).month == m)
    ]

    return _spans(never), _spans(partial)


def _spans(months: list[tuple[int, int]]) -> list[str]:
    """Consecutive months as one span: 'March 2013 - December 2013'."""
    spans: list[list[tuple[int, int]]] = []
    for year, month in months:
        if spans and (spans[-1][-1][0] * 12 + spans[-1][-1][1]) + 1 == year * 12 + month:
            spans[-1].append((year, month))
        else:
            spans.append([(year, month)])
    names = [[dt.date(y, m, 1).strftime("%B %Y") for y, m in span] for span in spans]
    return [span[0] if len(span) == 1 else f"{span[0]} - {span[-1]}" for span in names]


def _use_and_limits(facts: CardFacts) -> str:
    window = facts.tag("training_window") or ""
    lines = [
        "## Intended use",
        "",
        "Scoring scheduled departures from EWR, JFK and LGA two hours before departure, from the features "
        f"of the `{facts.tag('feature_service') or '-'}` feature service, to flag flights likely to arrive "
        "more than 15 minutes late. It is a decision aid for a day's operations, not a guarantee: about one "
        "flight in four is late, and the model ranks flights (ROC-AUC above) rather than knowing any one.",
        "",
        "## Known limits",
        "",
    ]
    if ".." in window:
        never, partial = unseen_months(window)
        lines.append(f"- It learned from {window} only (train days {facts.params.get('train_days', '-')}).")
        if never:
            lines.append(f"- It has never seen a flight of: {', '.join(never)}, nor of any year but 2013.")
        if partial:
            lines.append(f"- It saw only part of: {', '.join(partial)}.")
    lines += [
        "- Seasonality: delays follow the season (winter storms, summer thunderstorms, holiday peaks). "
        "Outside its window the rates it learned and its calibration drift; the drift report and the "
        "retraining sensor watch for that.",
        "- A carrier, destination or hour first seen after its train days maps to an 'unseen' category.",
        "- Its weather is the origin's hourly observation before prediction time; weather at the "
        "destination and en route is not among its inputs.",
        "- Cancelled and diverted flights were excluded from training: it says nothing about them.",
    ]
    return "\n".join(lines)


def build_html(markdown_text: str, title: str) -> str:
    """The card as one self-contained HTML page (the calibration plot is inline)."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    style = (
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
        "table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.25rem .5rem;"
        "text-align:right}th:first-child,td:first-child{text-align:left}code{background:#f4f4f4}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{style}</style></head><body>\n{body}\n</body></html>\n"
    )


def card_markdown(client: Any, name: str, version: str | int) -> str:
    return build_markdown(read_facts(client, name, version))


def log_card(client: Any, name: str, version: str | int) -> str:
    """Write the card of `version` into its run's artifacts and tag the version with the HTML's URI."""
    facts = read_facts(client, name, version)
    text = build_markdown(facts)
    with tempfile.TemporaryDirectory(prefix="model_card_") as scratch:
        folder = Path(scratch)
        (folder / MARKDOWN_FILE).write_text(text)
        (folder / HTML_FILE).write_text(build_html(text, f"{name} version {facts.version}"))
        for file in (MARKDOWN_FILE, HTML_FILE):
            client.log_artifact(facts.run_id, str(folder / file), CARD_FOLDER)
    uri = f"{client.get_run(facts.run_id).info.artifact_uri}/{CARD_FOLDER}/{HTML_FILE}"
    client.set_model_version_tag(name, facts.version, CARD_TAG, uri)
    return uri
