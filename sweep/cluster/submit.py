"""``ibsweep submit``: a sweep sent to a Ray cluster through its job API."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ibsweep.analysis import run_schema as rs
from ibsweep.sweep.cluster.ray_cluster import ibsweep_env, ray_token_on
from ibsweep.sweep.config.grid import expand
from ibsweep.sweep.config.spec import load_spec, sweep_file, uri_has_password
from ibsweep.sweep.errors import UsageError


def job_entrypoint(file_name: str, tracking_uri: str | None) -> str:
    """The command the job runs on the cluster (in a folder holding only the sweep file)."""
    args = ["ibsweep", "run", file_name, "--no-analyze"]
    if tracking_uri:
        args += ["--tracking-uri", tracking_uri]
    return shlex.join(args)


def _job_api(address: str | None) -> str:
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise UsageError(
            "no cluster: give --address http://HEAD:8265 (the job API, e.g. through "
            "`ray dashboard cluster.yaml`) or set RAY_ADDRESS"
        )
    if not address.startswith(("http://", "https://")):
        raise UsageError(
            f"--address {address} is not a job API address; it is http://HEAD:8265 "
            "(the Ray dashboard's port), not the GCS address HEAD:6379"
        )
    return address.rstrip("/")


def _client(address: str):
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except AuthenticationError as err:
        raise UsageError(f"the Ray cluster at {address} refused the token: {_first(err)}") from None
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise UsageError(f"cannot reach the Ray job API at {address}: {_first(err)}") from None


def _first(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def submit_sweep(
    file: str, address: str | None, tracking_uri: str | None, wait: bool = True
) -> int:
    """Submit ``ibsweep run FILE`` as a Ray job; with ``wait``, follow its logs to the end.

    The sweep file is checked here first (every mistake is one line, nothing is sent); the job
    gets a working folder holding only that file. Returns the job's exit code (0 when not
    waiting). Ray token authentication: RAY_AUTH_MODE=token with RAY_AUTH_TOKEN or
    RAY_AUTH_TOKEN_PATH, or (mode unset) a token at hand, as for ``ibsweep run --address``.
    """
    path = sweep_file(file)
    spec = load_spec(path)
    if not expand(spec).trials:
        raise UsageError(f"{path}: the grid has no runnable configuration (all were skipped)")
    if tracking_uri and uri_has_password(tracking_uri):
        raise UsageError(
            "the tracking URI holds a password; credentials come from the cluster's environment "
            "(MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD), never from the command line"
        )
    api = _job_api(address)
    token = ray_token_on()
    client = _client(api)
    with tempfile.TemporaryDirectory(prefix="ibsweep-job-") as folder:
        shutil.copyfile(path, Path(folder) / path.name)
        try:
            job_id = client.submit_job(
                entrypoint=job_entrypoint(path.name, tracking_uri),
                runtime_env={
                    "working_dir": folder,
                    "env_vars": {
                        **ibsweep_env(),
                        "PYTHONUNBUFFERED": "1",
                        # the driver adds the trials' variables to the job's own (init_ray)
                        "RAY_OVERRIDE_JOB_RUNTIME_ENV": "1",
                    },
                },
                metadata={rs.SWEEP: spec.name},
            )
        except RuntimeError as err:
            raise UsageError(f"the Ray job API at {api} refused the job: {_first(err)}") from None
    ray_cli = f"{'RAY_AUTH_MODE=token ' if token else ''}ray job"
    print(f"submitted sweep '{spec.name}' as Ray job {job_id} to {api}")
    print(f"  follow:  {ray_cli} logs {job_id} --address {api} --follow")
    print(f"  status:  {ray_cli} status {job_id} --address {api}")
    print(f"  stop:    {ray_cli} stop {job_id} --address {api}")
    print(f"  results: ibsweep analyze {spec.name} --tracking-uri <the cluster's MLflow server>")
    sys.stdout.flush()
    if not wait:
        return 0
    return follow_job(client, job_id)


def follow_job(client, job_id: str) -> int:
    """Print a job's logs as they come until it ends; returns its exit code."""
    from ray.job_submission import JobStatus

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()

    try:
        try:
            asyncio.run(tail())
        except RuntimeError as err:  # the log stream broke; the job's status still tells
            print(f"log stream closed: {_first(err)}", file=sys.stderr)
        while not (info := client.get_job_info(job_id)).status.is_terminal():
            time.sleep(1)
    except KeyboardInterrupt:
        print(f"\nstopped following; job {job_id} goes on", file=sys.stderr)
        return 130
    print(f"job {job_id}: {info.status.value} ({info.message})", file=sys.stderr)
    if info.driver_exit_code is not None:
        return int(info.driver_exit_code)
    return 0 if info.status == JobStatus.SUCCEEDED else 1
