"""A code location with one tiny job, for tests that need the daemon to launch a queued run.

Its Definitions have no sensors, schedules or automation, so a `dagster-daemon run -f` of this file
launches nothing by itself: only what a test submits (and its run monitoring watches every run of the
instance, whatever their code location).
"""

import dagster as dg


@dg.op
def answer() -> int:
    return 42


@dg.job
def queue_probe() -> None:
    answer()


defs = dg.Definitions(jobs=[queue_probe])
