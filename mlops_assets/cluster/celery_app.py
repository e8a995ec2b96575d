"""The Celery app the workers of `mlops cluster up --only celery` run: dagster-celery's own (its tasks, queue
and defaults), with the workers' standard streams left alone.

Celery replaces a worker's `sys.stdout` and `sys.stderr` with a logging proxy that has no `encoding`, and
Ray Tune reads `sys.stdout.encoding` when it is imported: the tuning step failed on a worker with
`'LoggingProxy' object has no attribute 'encoding'`. Without the redirection a step's prints go to the
worker's log file, as its log records do.
"""

from dagster_celery.app import app, execute_job, execute_plan, resume_job

app.conf.worker_redirect_stdouts = False

__all__ = ["app", "execute_job", "execute_plan", "resume_job"]
