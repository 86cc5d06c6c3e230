"""A real ``mlflow server`` for the benchmarks: a free 127.0.0.1 port, a SQLite store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    db: Path, artifacts: Path, workers: int, log: Path | None = None, env: dict | None = None
) -> tuple[subprocess.Popen, str]:
    """Start ``mlflow server`` on ``db`` (its output to ``log``) and wait until it answers;
    returns the process (in a session of its own, see ``stop_server``) and its URI."""
    port = _free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
        "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - the server holds it
    proc = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return proc, uri
        except OSError:
            time.sleep(0.5)
    stop_server(proc, signal.SIGKILL)
    raise RuntimeError(
        "mlflow server did not start" + (f": {log.read_text()[-2000:]}" if log else "")
    )


def stop_server(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """End the server and its workers (its whole session)."""
    os.killpg(proc.pid, sig)
    proc.wait(60)
