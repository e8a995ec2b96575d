"""What a person watching `mlops demo` sees of a `dagster` CLI run while it runs.

The CLI's output is Dagster's event log, one line an event. Of it, `follow` prints each step as it
finishes (with the duration Dagster measured) or fails, and the messages the platform's assets log at
INFO or above (partitions done, trials, epochs): the same lines the UI's run log shows. The rest is kept
only to be printed if the run fails.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

# `<date> <time> <tz> - dagster - <LEVEL> - <job> - <run id> - ...`
LINE = re.compile(
    r"^\d{4}-\d\d-\d\d [\d:]+ [+-]\d{4} - dagster - (?P<level>[A-Z]+) - \S+ - [0-9a-f-]{36} - (?P<rest>.*)$"
)
# An event: `<pid> - <step> - <EVENT_TYPE> - <message>` (a run-level event has no step).
EVENT = re.compile(r"^\d+ - (?:(?P<step>\S+) - )?(?P<event>[A-Z_]+) - (?P<message>.*)$")
STEP_DONE = re.compile(
    r'Finished execution of step "(?P<step>[^"]+)" in (?P<duration>[^.]+(?:\.\d+)?[a-z]*)\.?'
)
USER_LEVELS = ("INFO", "WARNING", "ERROR", "CRITICAL")
KEPT_LINES = 400


def describe_line(line: str) -> str | None:
    """The line a person should see for one line of Dagster's output, or None."""
    match = LINE.match(line.rstrip("\n"))
    if not match:
        return None
    level, rest = match["level"], match["rest"]
    event = EVENT.match(rest)
    if event:
        if event["event"] == "STEP_SUCCESS":
            done = STEP_DONE.search(event["message"])
            step = done["step"] if done else event["step"]
            return f"  done  {step} in {done['duration'] if done else '?'}"
        if event["event"] == "STEP_FAILURE":
            return f"  FAILED {event['step']}: {event['message'][:300]}"
        return None
    if level in USER_LEVELS:
        step, _, message = rest.partition(" - ")
        return f"        {step}: {message}" if message else None
    return None


def finished_step(line: str) -> str | None:
    """The step a line of Dagster's output reports finished (STEP_SUCCESS), or None."""
    match = LINE.match(line.rstrip("\n"))
    event = EVENT.match(match["rest"]) if match else None
    return event["step"] if event and event["event"] == "STEP_SUCCESS" else None


def follow(
    command: Sequence[str],
    write: Callable[[str], None] = print,
    label: str = "",
    on_step_done: Callable[[str], None] | None = None,
) -> tuple[int, str]:
    """Runs `command`, writing the lines worth seeing as they come and the elapsed time at the end
    (after `label`, when given); `on_step_done(step)` is called as each step succeeds (to start work
    that needed it while the run goes on). Returns (exit code, the output's last lines)."""
    started = time.perf_counter()
    tail: collections.deque[str] = collections.deque(maxlen=KEPT_LINES)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            tail.append(line)
            shown = describe_line(line)
            if shown:
                write(shown)
                sys.stdout.flush()
            step = finished_step(line) if on_step_done else None
            if step and on_step_done:
                on_step_done(step)
        code = process.wait()
    write(f"  ({label + ': ' if label else ''}{time.perf_counter() - started:.1f} s)")
    return code, "".join(tail)


class Background:
    """`follow` of a command on a thread, while the caller follows another: both runs' lines are
    written as they come (each names its step)."""

    def __init__(self, command: Sequence[str], write: Callable[[str], None] = print, label: str = "") -> None:
        self._result: tuple[int, str] = (-1, "")
        self._thread = threading.Thread(target=self._follow, args=(command, write, label), daemon=True)
        self._thread.start()

    def _follow(self, command: Sequence[str], write: Callable[[str], None], label: str) -> None:
        try:
            self._result = follow(command, write, label)
        except OSError as error:  # the command could not start: reported by wait()
            self._result = (-1, str(error))

    def wait(self) -> tuple[int, str]:
        """(exit code, the output's last lines) once the command has ended."""
        self._thread.join()
        return self._result
