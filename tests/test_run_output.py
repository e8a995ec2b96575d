"""What `mlops demo` shows of a Dagster CLI run: finished steps with their duration, failures, and the
assets' own messages; nothing of Dagster's internal events. Lines as Dagster 1.13 writes them."""

from __future__ import annotations

import sys

from mlops_assets.lib.run_output import Background, describe_line, finished_step, follow

RUN_ID = "c44f3161-253e-4870-86e8-76432ababf5e"
RUN = "2026-12-07 04:30:40 +0000 - dagster - {level} - __ASSET_JOB - " + RUN_ID + " - {rest}"


def line(level: str, rest: str) -> str:
    return RUN.format(level=level, rest=rest)


def test_a_finished_step_shows_with_dagsters_duration():
    done = line(
        "DEBUG",
        "11815 - features__training_set - STEP_SUCCESS - "
        'Finished execution of step "features__training_set" in 1m12s.',
    )
    assert describe_line(done) == "  done  features__training_set in 1m12s"
    fast = line("DEBUG", '11815 - a - STEP_SUCCESS - Finished execution of step "a" in 86ms.')
    assert describe_line(fast) == "  done  a in 86ms"


def test_a_failed_step_and_an_assets_message_show():
    failed = line(
        "ERROR", '11815 - models__baselines - STEP_FAILURE - Execution of step "models__baselines" failed.'
    )
    assert (
        describe_line(failed) == '  FAILED models__baselines: Execution of step "models__baselines" failed.'
    )
    message = line("INFO", "monitoring__drift_report - 2013-03-05: 5/31 days, drift share 0.120")
    assert (
        describe_line(message) == "        monitoring__drift_report: 2013-03-05: 5/31 days, drift share 0.120"
    )


def test_internal_events_and_other_output_are_not_shown():
    for rest in (
        '11815 - a - STEP_START - Started execution of step "a".',
        '11792 - RUN_START - Started execution of run for "__ASSET_JOB".',
        "11815 - a - ASSET_MATERIALIZATION - Materialized value a.",
    ):
        assert describe_line(line("DEBUG", rest)) is None
    assert describe_line("  warnings.warn(") is None
    assert (
        describe_line(line("DEBUG", "a - Writing file at: /tmp/x using PickledObjectFilesystemIOManager..."))
        is None
    )


def test_follow_streams_the_shown_lines_and_keeps_the_output():
    script = "; ".join(
        f"print({text!r})"
        for text in (
            "noise",
            line("INFO", "x - 1/2 days"),
            line("DEBUG", '1 - x - STEP_SUCCESS - Finished execution of step "x" in 3.2s.'),
        )
    )
    shown: list[str] = []
    code, output = follow([sys.executable, "-c", script + "; raise SystemExit(3)"], write=shown.append)
    assert code == 3
    assert shown[:2] == ["        x: 1/2 days", "  done  x in 3.2s"] and shown[2].endswith(" s)")
    assert output.startswith("noise\n") and "STEP_SUCCESS" in output


def test_a_background_run_is_followed_while_another_runs():
    slow = f"import time; time.sleep(0.5); print({line('INFO', 'online - written')!r})"
    shown: list[str] = []
    beside = Background([sys.executable, "-c", slow], write=shown.append, label="features/online_store")
    code, _ = follow([sys.executable, "-c", f"print({line('INFO', 'train - fitted')!r})"], write=shown.append)
    assert code == 0 and beside.wait()[0] == 0
    assert shown.index("        train: fitted") < shown.index("        online: written")
    assert shown[-1].startswith("  (features/online_store: ")


def test_work_waiting_on_a_step_starts_while_the_run_goes_on(tmp_path):
    """The demo starts the online store's run once `feast apply` has finished in the training run:
    the callback sees each finished step as its line comes, before the run has ended."""
    views_done = line("DEBUG", '1 - views - STEP_SUCCESS - Finished execution of step "views" in 1s.')
    train_failed = line("ERROR", '1 - train - STEP_FAILURE - Execution of step "train" failed.')
    script = "; ".join(
        [
            f"print({views_done!r})",
            "import sys; sys.stdout.flush(); import time; time.sleep(0.5)",
            f"print({line('INFO', 'train - fitted')!r})",
            f"print({train_failed!r})",
            f"open({str(tmp_path / 'ended')!r}, 'w').close()",
        ]
    )
    events: list[str] = []

    def step_done(step: str) -> None:
        events.append(step)
        events.append("run ended" if (tmp_path / "ended").exists() else "run going on")

    code, _ = follow([sys.executable, "-c", script], write=events.append, on_step_done=step_done)
    assert code == 0
    assert events[events.index("views") + 1] == "run going on"
    assert events.index("views") < events.index("        train: fitted")
    assert "train" not in events  # a failed step is not a finished one
    assert finished_step(line("DEBUG", '7 - a - STEP_START - Started execution of step "a".')) is None
