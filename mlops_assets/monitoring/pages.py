"""The day's drift page: a small, self-contained HTML page written from the day's record (the figures the
asset computed), in the place of Evidently's interactive report, which `mlops report html` renders on
demand over it. Evidently's widgets (a plotly figure or two per column, 5.7 MB of HTML a day) cost far
more than the statistics, and few days are ever opened.
"""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: 0.25em 0.8em; text-align: left; border-bottom: 1px solid #ddd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.drifted td { background: #fde8e8; }
.bar { display: inline-block; height: 0.7em; background: #7a9cc6; }
tr.drifted .bar { background: #d9534f; }
code { background: #f3f3f3; padding: 0.1em 0.3em; }
.note { background: #f6f8fa; border-left: 4px solid #7a9cc6; padding: 0.6em 1em; margin: 1em 0; }
"""


def render_command(asset: str, day: str) -> str:
    """The command that renders Evidently's report of `asset` for `day` (see mlops_assets/cli.py)."""
    return f"mlops report html {asset} {day}"


def _row(feature: str, record: dict[str, Any]) -> str:
    score, threshold = record["scores"][feature], record["thresholds"][feature]
    drifted = feature in record["drifted"]
    width = min(score / threshold, 2.0) * 60 if threshold else 0.0  # 60 px at the threshold
    return (
        f'<tr class="{"drifted" if drifted else ""}"><td>{escape(feature)}</td>'
        f"<td>{escape(record['methods'][feature])}</td>"
        f'<td class="num">{score:.4f}</td><td class="num">{threshold:g}</td>'
        f'<td><span class="bar" style="width:{width:.0f}px"></span></td>'
        f"<td>{'drifted' if drifted else ''}</td></tr>"
    )


def _ratio(record: dict[str, Any], feature: str) -> float:
    threshold = record["thresholds"][feature]
    return record["scores"][feature] / threshold if threshold else 0.0


def drift_page(record: dict[str, Any], asset: str) -> str:
    """The page of a drift record (`drift_of_day`'s body): its figures, every feature's score against its
    threshold (highest first), and how to get Evidently's report."""
    day = record["day"]
    features = sorted(record["scores"], key=lambda f: _ratio(record, f), reverse=True)
    prediction = "drifted" if record["prediction_drifted"] else "not drifted"
    empty = ", ".join(record.get("empty", [])) or "none"
    rows = "\n".join(_row(f, record) for f in features)
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="UTF-8"><title>{escape(asset)} {day}</title><style>{STYLE}</style></head>
<body>
<h1>Drift of {day}</h1>
<p>{record["current_rows"]} flights scored by model version {escape(str(record["model_version"]))}, against
{record["reference_rows"]} reference rows of the champion's training set.</p>
<ul>
<li>drift share: <b>{record["drift_share"]:.3f}</b> ({len(record["drifted"])} of {record["features"]} features
drifted)</li>
<li>prediction drift (probability_late): <b>{record["prediction_drift"]:.4f}</b>, {prediction};
mean probability {record["mean_probability"]:.4f} (reference {record["reference_mean_probability"]:.4f})</li>
<li>columns with no value on one side (left out): {escape(empty)}</li>
</ul>
<div class="note">These are Evidently's own figures (DataDriftPreset's tests, as the asset computed them).
Evidently's interactive report (distributions and drift plots per feature) is rendered on demand:
<code>{escape(render_command(asset, day))}</code> writes it to this file, in place of this page.</div>
<table>
<tr><th>feature</th><th>method</th><th>score</th><th>threshold</th><th>score / threshold</th><th></th></tr>
{rows}
</table>
</body>
</html>
"""
