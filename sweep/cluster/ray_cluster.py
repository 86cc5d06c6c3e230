"""Ray: local or a cluster, its token, and what a multi-node cluster's nodes must share."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ibsweep.sweep.errors import UsageError
from ibsweep.sweep.tracking.uri import fail_fast_http_env
from ibsweep.sweep.tuning.test_hold import ENV as TEST_HOLD_ENV

DEFAULT_STORAGE = ".ibsweep/tune"


SHARED_STORAGE_ENV = "IBSWEEP_SHARED_STORAGE"


def resolve_storage(raw: str | None) -> str:
    """Tune's storage: a URI (s3://, gs://, ...) as given, else an absolute path."""
    raw = raw or DEFAULT_STORAGE
    if "://" in raw and not raw.startswith("file://"):
        return raw.rstrip("/")
    return str(Path(raw.removeprefix("file://")).expanduser().resolve())


def storage_is_shared(storage: str) -> bool:
    """Whether every node sees ``storage``: a URI, or a path under $IBSWEEP_SHARED_STORAGE."""
    if "://" in storage:
        return True
    roots = [r for r in os.environ.get(SHARED_STORAGE_ENV, "").split(os.pathsep) if r.strip()]
    path = Path(storage)
    return any(path.is_relative_to(Path(r).expanduser().resolve()) for r in roots)


def tracking_is_local(uri: str) -> bool:
    """Whether a tracking URI is a store on this machine's disk (SQLite, file:, a plain path)."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    return scheme in ("", "file", "sqlite")


def _loopback(uri: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(uri).hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"


def check_cluster(where: Path, nodes: list[dict], uri: str, storage: str) -> None:
    """Refuse stores a multi-node cluster cannot share; ``nodes`` are Ray's alive nodes."""
    if len(nodes) <= 1:
        return
    n, hosts = len(nodes), {node["NodeManagerAddress"] for node in nodes}
    if tracking_is_local(uri):
        raise UsageError(
            f"{where}: tracking URI {uri} is a store on one machine's disk, but the Ray cluster "
            f"has {n} nodes; use the cluster's MLflow server (http://HEAD:5000) or a database "
            "server (postgresql://...)"
        )
    if len(hosts) > 1 and _loopback(uri):
        raise UsageError(
            f"{where}: tracking URI {uri} is a loopback address, but the Ray cluster's {n} nodes "
            "are on different hosts; use the server's address on the cluster's private network"
        )
    if not storage_is_shared(storage):
        declared = os.environ.get(SHARED_STORAGE_ENV) or "unset"
        raise UsageError(
            f"{where}: storage {storage} is local to this machine, but the Ray cluster has {n} "
            f"nodes; give a storage every node shares: s3://..., gs://..., or a path under "
            f"${SHARED_STORAGE_ENV} (now {declared})"
        )


def ray_token_available() -> bool:
    """Whether a Ray token is at hand: $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return Path(path).expanduser().is_file()


def ray_token_on() -> bool:
    """Whether Ray's token authentication is on in this process (RAY_AUTH_MODE=token)."""
    return os.environ.get("RAY_AUTH_MODE", "").lower() == "token"


def enable_ray_token() -> bool:
    """Turn on Ray token authentication when RAY_AUTH_MODE is unset and a token is at hand.

    As Ray does for a cluster it finds by itself; RAY_AUTH_MODE=disabled never sends a token.
    Ray reads the mode when it is first imported, so the command line calls this (a setting of
    its whole process) before anything imports ray. Returns whether token authentication is on.
    """
    if "RAY_AUTH_MODE" not in os.environ and ray_token_available():
        os.environ["RAY_AUTH_MODE"] = "token"
    return ray_token_on()


def init_ray(address: str | None, cpus: int | None = None) -> None:
    """Connect to a cluster (``--address`` or RAY_ADDRESS), else start local Ray.

    Trials' workers get the environment they need (``worker_env``); this process's own
    environment is as it was afterwards. Local Ray's workers inherit it from the Ray processes
    started here (set only while they start: a job's runtime environment would cost every
    worker a cold start); a cluster's get it as the job's runtime environment.
    """
    address = address or os.environ.get("RAY_ADDRESS")
    import ray

    kwargs = {"logging_level": logging.WARNING, "log_to_driver": False}
    env = worker_env()
    if not address:
        with environ_defaults(env):
            ray.init(num_cpus=cpus or os.cpu_count(), include_dashboard=False, **kwargs)
        return
    if env:
        kwargs["runtime_env"] = {"env_vars": env}
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError) as err:
        raise UsageError(
            f"cannot connect to the Ray cluster at {address} ({str(err).splitlines()[0]}); check "
            "the address, and for token authentication RAY_AUTH_MODE=token with RAY_AUTH_TOKEN "
            "or RAY_AUTH_TOKEN_PATH"
        ) from None


@contextlib.contextmanager
def environ_defaults(values: dict[str, str]) -> Iterator[None]:
    """These environment variables, where this process does not set them already, for the
    duration of the block; then the ones added are removed again (the user's are kept)."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def test_env() -> dict[str, str]:
    """The trials' test hook, if this process asks for it (``sweep.tuning.test_hold``)."""
    return {TEST_HOLD_ENV: os.environ[TEST_HOLD_ENV]} if TEST_HOLD_ENV in os.environ else {}


def worker_env() -> dict[str, str]:
    """What every trial's worker needs in its environment and this process does not set:
    MLflow fails fast (the sink retries), trials run in the driver's folder, and the trials'
    test hook if asked for."""
    env = {**test_env(), **fail_fast_http_env()}
    if "RAY_CHDIR_TO_TRIAL_DIR" not in os.environ:
        env["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    return env


def alive_nodes() -> list[dict]:
    """The alive nodes of the connected Ray cluster."""
    import ray

    return [node for node in ray.nodes() if node.get("Alive")]
