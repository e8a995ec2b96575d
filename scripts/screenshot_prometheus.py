"""Screenshot of the platform's metrics in Prometheus's own UI (its graph page), in headless Chromium.

    python scripts/screenshot_prometheus.py docs/images/prometheus_metrics.png --prometheus URL

Needs a Prometheus that scrapes the service and the exporter (docs/operations.md#prometheus) and has done
so for a few minutes; the page graphs the queries of `--expr` (default: the serving p99 by endpoint, the
requests per second by status, and the daily assets' materialization age) over `--range`. Chromium
(Debian: `apt-get install chromium`) renders the page with virtual time, so the graphs have drawn before
the picture is taken.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

DEFAULT_EXPRESSIONS = (
    "histogram_quantile(0.99, sum by (endpoint, le) (rate("
    'mlops_serving_request_duration_seconds_bucket{endpoint=~"/predict|/predict/batch"}[1m])))',
    "sum by (endpoint, status) (rate(mlops_serving_request_duration_seconds_count[1m])) > 0",
    "mlops:asset_materialization_age_hours",
)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def graph_url(prometheus: str, expressions: list[str], range_: str) -> str:
    """The graph page with one graph panel per expression (the classic and the React UI read these)."""
    params: dict[str, str] = {}
    for i, expr in enumerate(expressions):
        params.update(
            {f"g{i}.expr": expr, f"g{i}.tab": "0", f"g{i}.range_input": range_, f"g{i}.stacked": "0"}
        )
    return f"{prometheus.rstrip('/')}/graph?{urllib.parse.urlencode(params)}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("output", type=Path)
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--expr", action="append", help="a PromQL expression to graph (repeatable)")
    parser.add_argument("--range", default="15m", help="the graphs' time range (default 15m)")
    parser.add_argument("--size", default="1400,2300", help="window width,height in pixels")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not on PATH (Debian: apt-get install chromium)")
    url = graph_url(args.prometheus, args.expr or list(DEFAULT_EXPRESSIONS), args.range)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={args.size}",
            "--virtual-time-budget=15000",  # the page's queries and drawing finish in virtual time
            f"--screenshot={args.output.resolve()}",
            url,
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    if shutil.which("optipng"):
        subprocess.run(["optipng", "-quiet", "-o2", str(args.output)], check=False)
    print(f"wrote {args.output} from {url[:120]}...")


if __name__ == "__main__":
    main()
