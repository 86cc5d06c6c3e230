"""The sweep's MLflow structure: experiment, parent run per execution, child run per seed."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

from mlflow.entities import Param, Run, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from ibsweep.analysis import run_schema as rs


def logged_steps(client: MlflowClient, run_id: str, keys: Iterable[str]) -> dict[str, int]:
    """The last step logged for each key of a run (-1 where none)."""
    run = client.get_run(run_id)
    if not run.data.metrics:
        return dict.fromkeys(keys, -1)
    return {
        key: max((m.step for m in client.get_metric_history(run_id, key)), default=-1)
        for key in keys
    }


MAX_PARAMS = 100  # MLflow's limit of params per log_batch call
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call


def package_version() -> str:
    """The installed ibsweep version."""
    try:
        return version("ibsweep")
    except PackageNotFoundError:
        return "unknown"


def open_experiment(client: MlflowClient, name: str) -> str:
    """The id of the experiment ``name``, created if missing (also creates a fresh store).

    It is tagged as a model-training experiment, so that MLflow's UI opens it on its runs.
    """
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return client.create_experiment(name, tags={rs.EXPERIMENT_KIND: rs.MODEL_TRAINING})
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    if exp.tags.get(rs.EXPERIMENT_KIND) != rs.MODEL_TRAINING:
        client.set_experiment_tag(exp.experiment_id, rs.EXPERIMENT_KIND, rs.MODEL_TRAINING)
    return exp.experiment_id


def latest_parent(client: MlflowClient, exp_id: str, digest: str) -> Run | None:
    """The newest execution of the same sweep (same normalised file), if any."""
    runs = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{rs.ROLE}` = '{rs.PARENT_ROLE}' and tags.`{rs.DIGEST}` = '{digest}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def child_runs(client: MlflowClient, exp_id: str, parent_id: str) -> dict[str, Run]:
    """Child runs of an execution, by their key tag."""
    out: dict[str, Run] = {}
    token = None
    while True:
        page = client.search_runs(
            [exp_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_id}'",
            max_results=1000,
            page_token=token,
        )
        for run in page:
            out[run.data.tags.get(rs.KEY, run.info.run_id)] = run
        token = page.token
        if not token:
            return out


def create_child(
    client: MlflowClient,
    exp_id: str,
    parent_id: str,
    key: str,
    name: str,
    params: dict[str, str],
    tags: dict[str, str],
) -> str:
    """Create one child run with its params and tags; returns the run id."""
    all_tags = {**tags, MLFLOW_PARENT_RUN_ID: parent_id, MLFLOW_RUN_NAME: name, rs.KEY: key}
    run = client.create_run(exp_id, run_name=name, tags=all_tags)
    log_params(client, run.info.run_id, params)
    return run.info.run_id


def log_params(client: MlflowClient, run_id: str, params: dict[str, str]) -> None:
    """Log params in batches of MLflow's maximum size."""
    items = [Param(k, str(v)) for k, v in params.items()]
    for i in range(0, len(items), MAX_PARAMS):
        client.log_batch(run_id, params=items[i : i + MAX_PARAMS], synchronous=True)


def set_tags(client: MlflowClient, run_id: str, tags: dict[str, str]) -> None:
    """Set several tags in one call."""
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()], synchronous=True)
