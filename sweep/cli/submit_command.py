"""``ibsweep submit``: a sweep sent to a Ray cluster, what to do next, and its logs followed."""

from __future__ import annotations

import sys

from ibsweep.sweep.cluster.submit import follow_job, submit_sweep

INTERRUPTED = 130


def submit_command(file: str, address: str | None, tracking_uri: str | None, wait: bool) -> int:
    """Submit, print how to follow, check and stop the job; with ``wait``, print its logs to the
    end and return its exit code."""
    job = submit_sweep(file, address, tracking_uri)
    ray_cli = f"{'RAY_AUTH_MODE=token ' if job.token else ''}ray job"
    print(f"submitted sweep '{job.sweep}' as Ray job {job.job_id} to {job.api}")
    print(f"  follow:  {ray_cli} logs {job.job_id} --address {job.api} --follow")
    print(f"  status:  {ray_cli} status {job.job_id} --address {job.api}")
    print(f"  stop:    {ray_cli} stop {job.job_id} --address {job.api}")
    print(f"  results: ibsweep analyze {job.sweep} --tracking-uri <the cluster's MLflow server>")
    sys.stdout.flush()
    if not wait:
        return 0

    def write(chunk: str) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()

    try:
        code, state = follow_job(job, write)
    except KeyboardInterrupt:
        print(f"\nstopped following; job {job.job_id} goes on", file=sys.stderr)
        return INTERRUPTED
    print(state, file=sys.stderr)
    return code
