"""``ibsweep submit``: a sweep sent to a Ray cluster through its job API."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ibsweep.analysis import run_schema as rs
from ibsweep.sweep.cluster.ray_cluster import ray_token_on, test_env
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


@dataclass(frozen=True)
class SubmittedJob:
    """A sweep sent to a cluster: the Ray job's id, the job API it went to, the sweep's name."""

    job_id: str
    api: str
    sweep: str
    token: bool  # whether Ray's token authentication was on


def submit_sweep(file: str | Path, address: str | None, tracking_uri: str | None) -> SubmittedJob:
    """Submit ``ibsweep run FILE`` as a Ray job (``follow_job`` follows it).

    The sweep file is checked here first (every mistake is one line, nothing is sent); the job
    gets a working folder holding only that file. Ray token authentication: RAY_AUTH_MODE=token
    with RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH.
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
    client = _client(api)
    with tempfile.TemporaryDirectory(prefix="ibsweep-job-") as folder:
        shutil.copyfile(path, Path(folder) / path.name)
        try:
            job_id = client.submit_job(
                entrypoint=job_entrypoint(path.name, tracking_uri),
                runtime_env={
                    "working_dir": folder,
                    "env_vars": {
                        **test_env(),
                        "PYTHONUNBUFFERED": "1",
                        # the driver adds the trials' variables to the job's own (init_ray)
                        "RAY_OVERRIDE_JOB_RUNTIME_ENV": "1",
                    },
                },
                metadata={rs.SWEEP: spec.name},
            )
        except RuntimeError as err:
            raise UsageError(f"the Ray job API at {api} refused the job: {_first(err)}") from None
    return SubmittedJob(job_id, api, spec.name, ray_token_on())


def follow_job(job: SubmittedJob, write: Callable[[str], object]) -> tuple[int, str]:
    """Hand a job's logs to ``write`` as they come until it ends; its exit code and final state.

    A broken log stream ends the following, not the waiting: the job's status still tells.
    """
    from ray.job_submission import JobStatus

    client = _client(job.api)

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job.job_id):
            write(chunk)

    closed = ""
    try:
        asyncio.run(tail())
    except RuntimeError as err:
        closed = f"log stream closed: {_first(err)}; "
    while not (info := client.get_job_info(job.job_id)).status.is_terminal():
        time.sleep(1)
    state = f"{closed}job {job.job_id}: {info.status.value} ({info.message})"
    if info.driver_exit_code is not None:
        return int(info.driver_exit_code), state
    return (0 if info.status == JobStatus.SUCCEEDED else 1), state
