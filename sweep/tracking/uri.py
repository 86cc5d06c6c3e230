"""Which MLflow store a sweep talks to, and whether a tracking server answers."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(cli_uri: str | None, spec_uri: str | None) -> str:
    """The URI to use: --tracking-uri, else $MLFLOW_TRACKING_URI, else the file's, else SQLite.

    A relative SQLite path is made absolute, so trials (run in other folders) share the store.
    """
    uri = cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or spec_uri or DEFAULT_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def server_reachable(uri: str, timeout_s: float = 10.0) -> bool:
    """Whether an http(s) tracking server answers at all (any HTTP status); True for other URIs."""
    if not uri.startswith(("http://", "https://")):
        return True
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def fail_fast_http_env() -> dict[str, str]:
    """Environment for trial workers in which MLflow's HTTP calls fail at once, so that
    ``call_with_retry`` does the backoff (values the user set are kept).

    MLflow's own default (7 retries, up to ~4 minutes per call) would make a retry budget of
    seconds impossible and hide an outage from the sink. Given to Ray as the job's runtime
    environment, it applies to the workers, not to the driver's process.
    """
    wanted = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
    return {k: v for k, v in wanted.items() if k not in os.environ}
