"""Screenshot of the Dagster UI's global asset lineage (/asset-groups), taken in headless Chromium.

    python scripts/screenshot_asset_graph.py docs/images/asset_graph.png

Starts `dagster-webserver -w workspace.yaml` on a free port with a throwaway DAGSTER_HOME and MLOPS_HOME
(./data is never touched; no daemon, so no sensor or automation launches a run), waits until the code
location has loaded, drives Chromium over the DevTools protocol, and writes a PNG. Every process it starts
leads its own process group, which is ended on the way out, failure included.

Needs `chromium` on PATH (Debian: `apt-get install chromium`) and `websockets`, which dagster-webserver
brings (uvicorn[standard]). optipng, when present, shrinks the PNG losslessly.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

REPO = Path(__file__).resolve().parents[1]
LINEAGE_PATH = "/asset-groups"

LOCATIONS_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message causes { message } } }
      }
    }
  }
}
"""
ASSETS_QUERY = "query { assetNodes { groupName } }"
# The instance remembers that the first-visit community modal was seen; the localStorage key set
# before the page loads covers a UI that asks only the browser. A collapsed main navigation leaves the
# graph the width of the window.
NUX_SEEN_MUTATION = "mutation { setNuxSeen }"
BEFORE_LOAD_SCRIPT = (
    "localStorage.setItem('communityNux', '1'); localStorage.setItem('dagster-nav-collapsed', 'true');"
)

# Every node of the graph is an SVG foreignObject: per expanded group an outline box and a header (the
# group's name), per asset one node. Ready once all of them are laid out and no spinner or modal is left.
READY_CHECK = """
(() => {
  const objects = [...document.querySelectorAll('svg foreignObject')];
  const groups = new Set(%s);
  const texts = objects.map(o => (o.textContent || '').trim());
  return JSON.stringify({
    outlines: document.querySelectorAll('svg [class*="groupOutlineBox"]').length,
    assets: texts.filter(t => t && !groups.has(t)).length,
    spinning: document.querySelector('[role="progressbar"], [class*="Spinner"]') !== null,
    modal: document.querySelector('[role="dialog"], [class*="dialog"], [class*="Dialog"]') !== null,
  });
})()
"""
# The asset tree beside the graph has no stored state: its toggle (like the navigation's) shows the
# panel_show_right icon while open.
HIDE_PANELS = """
[...document.querySelectorAll('button')]
  .filter(b => b.querySelector('[aria-label="panel_show_right"]'))
  .map(b => b.click()).length
"""
# A double click on the graph's background is the UI's zoom-to-fit, which now sees the wider viewport.
ZOOM_TO_FIT = """
(() => {
  const svg = [...document.querySelectorAll('svg')].find(s => s.querySelector('foreignObject'));
  svg.dispatchEvent(new MouseEvent('dblclick', {bubbles: true, cancelable: true, view: window}));
  return true;
})()
"""
# The fit leaves no margin, so the zoom buttons at the right edge would cover the last column. A wheel
# event with ctrl held zooms about the pointer by deltaY percent (the viewport's own wheel handler).
ZOOM_OUT = """
(() => {
  const svg = [...document.querySelectorAll('svg')].find(s => s.querySelector('foreignObject'));
  const box = svg.parentElement.getBoundingClientRect();
  svg.dispatchEvent(new WheelEvent('wheel', {
    bubbles: true, cancelable: true, ctrlKey: true, deltaMode: 0, deltaY: %d,
    clientX: box.left + box.width / 2, clientY: box.top + box.height / 2,
  }));
  return true;
})()
"""
ZOOM_OUT_PERCENT = 7


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A child in its own session, so that ending its process group also ends what it spawned."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    if process.poll() is not None:
        return
    # Dagster treats SIGTERM like SIGINT and shuts its code-server subprocess down; SIGKILL is the fallback.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def http_json(url: str, payload: dict[str, Any] | None = None, timeout_s: float = 10.0) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def wait_for_code_location(base: str, webserver: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if webserver.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {webserver.returncode}")
        try:
            answer = http_json(f"{base}/graphql", {"query": LOCATIONS_QUERY})
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1.0)
            continue
        workspace = (answer.get("data") or {}).get("workspaceOrError") or {}
        entries = workspace.get("locationEntries") or []
        if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
            errors = [
                e["locationOrLoadError"]
                for e in entries
                if e["locationOrLoadError"]["__typename"] == "PythonError"
            ]
            if errors:
                messages = [errors[0]["message"], *(cause["message"] for cause in errors[0]["causes"])]
                raise RuntimeError("code location failed to load:\n" + "\n".join(m.strip() for m in messages))
            return
        time.sleep(1.0)
    raise TimeoutError(f"code location not loaded within {timeout_s:.0f} s")


class DevTools:
    """The few DevTools protocol calls this script needs, over one page's websocket."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.connection.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.connection.recv())
            # Events (no id) arrive in between; only the answer to this call matters.
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")


@contextlib.contextmanager
def chromium(workdir: Path, width: int, height: int, timeout_s: float) -> Iterator[DevTools]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if binary is None:
        raise RuntimeError("no chromium on PATH (Debian: apt-get install chromium)")
    profile = workdir / "chromium"
    command = [
        binary,
        "--headless=new",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "about:blank",
    ]
    # Chromium's sandbox refuses to run as root (containers).
    if os.geteuid() == 0:
        command.insert(1, "--no-sandbox")
    browser = start(command, workdir / "chromium.log", dict(os.environ))
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while not port_file.exists() or not port_file.read_text().strip():
            if browser.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not start")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        pages = [t for t in http_json(f"http://127.0.0.1:{port}/json/list") if t["type"] == "page"]
        with connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout_s) as ws:
            yield DevTools(ws)
    finally:
        stop(browser, grace_s=5.0)


def lineage_url(base: str, groups: list[str]) -> str:
    """The lineage page with every group expanded (the UI keeps expanded groups in the query string)."""
    expanded = ",".join(f"global@global:{group}" for group in groups)
    return f"{base}{LINEAGE_PATH}?{urllib.parse.urlencode({'expanded': expanded}, safe='@:,')}"


def wait_until_ready(tools: DevTools, groups: list[str], assets: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        value = tools.evaluate(READY_CHECK % json.dumps(groups))
        state = json.loads(value) if isinstance(value, str) else {}
        laid_out = state.get("outlines") == len(groups) and state.get("assets") == assets
        if laid_out and not state["spinning"] and not state["modal"]:
            return
        time.sleep(0.5)
    raise TimeoutError(
        f"the lineage graph did not render within {timeout_s:.0f} s: {state} "
        f"(expected {len(groups)} groups, {assets} assets)"
    )


def capture(
    base: str, workdir: Path, width: int, height: int, scale: float, timeout_s: float, settle_s: float
) -> bytes:
    nodes = http_json(f"{base}/graphql", {"query": ASSETS_QUERY})["data"]["assetNodes"]
    groups = sorted({node["groupName"] for node in nodes if node["groupName"]})
    with chromium(workdir, width, height, timeout_s) as tools:
        tools.call("Page.enable")
        tools.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=scale,
            mobile=False,
        )
        tools.call("Page.addScriptToEvaluateOnNewDocument", source=BEFORE_LOAD_SCRIPT)
        tools.call("Page.navigate", url=lineage_url(base, groups))
        wait_until_ready(tools, groups, len(nodes), timeout_s)
        tools.evaluate(HIDE_PANELS)
        # The viewport resizes with the panel gone; fit the graph to it and let the zoom animation end.
        time.sleep(1.0)
        tools.evaluate(ZOOM_TO_FIT)
        time.sleep(settle_s)
        tools.evaluate(ZOOM_OUT % ZOOM_OUT_PERCENT)
        time.sleep(settle_s)
        wait_until_ready(tools, groups, len(nodes), timeout_s)
        shot = tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        return base64.b64decode(shot["data"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, nargs="?", default=REPO / "docs/images/asset_graph.png")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument(
        "--scale", type=float, default=2.0, help="device pixels per CSS pixel (2: sharp when zoomed)"
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds for each wait")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between render and screenshot")
    args = parser.parse_args(argv)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="asset-graph-shot-") as tmp:
        workdir = Path(tmp)
        dagster_home = workdir / "dagster_home"
        dagster_home.mkdir()
        (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {
            **os.environ,
            "DAGSTER_HOME": str(dagster_home),
            "MLOPS_HOME": str(workdir / "mlops_home"),
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "DO_NOT_TRACK": "true",
        }
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        webserver_bin = Path(sys.executable).parent / "dagster-webserver"
        command = [str(webserver_bin), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
        webserver = start(command, workdir / "webserver.log", env)
        try:
            wait_for_code_location(base, webserver, args.timeout)
            http_json(f"{base}/graphql", {"query": NUX_SEEN_MUTATION})
            png = capture(base, workdir, args.width, args.height, args.scale, args.timeout, args.settle)
        except BaseException:
            # The temporary folder and the logs in it go with this exception: show their ends first.
            for name in ("webserver.log", "chromium.log"):
                if (workdir / name).exists():
                    tail = (workdir / name).read_text(errors="replace")[-3000:]
                    sys.stderr.write(f"--- end of {name} ---\n{tail}\n")
            raise
        finally:
            stop(webserver)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    partial = args.output.with_name(f".{args.output.name}.partial")
    partial.write_bytes(png)
    if shutil.which("optipng"):
        subprocess.run(["optipng", "-quiet", "-o2", str(partial)], check=True)
    partial.replace(args.output)
    # A PNG's IHDR chunk holds its width and height, big-endian, at bytes 16..24.
    width, height = struct.unpack(">II", png[16:24])
    size_kib = args.output.stat().st_size / 1024
    print(f"{args.output}: {width}x{height} px, {size_kib:.0f} KiB, {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
