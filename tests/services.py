"""Real components for tests: the ibsweep CLI as a process, an MLflow server, a Ray cluster."""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml
from mlflow.tracking import MlflowClient


def write_sweep(folder: Path, spec: dict, name: str = "sweep.yaml") -> Path:
    """Write a sweep file."""
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def ibsweep(*args: str, cwd: Path, timeout: float = 600, env: dict | None = None):
    """Run the ibsweep command line in its own process; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "ibsweep.sweep.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def ibsweep_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """The ibsweep command line in this process (its own ``main``): exit code, stdout and
    stderr. For commands that start no Ray (an analysis, a complete sweep run again)."""
    from ibsweep.sweep.cli.main import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def tune_reports(folder: Path) -> list[dict]:
    """Every report to Tune of every trial under ``folder`` (their result.json files)."""
    return [
        json.loads(line)
        for path in folder.rglob("result.json")
        for line in path.read_text().splitlines()
        if line.strip()
    ]


@dataclass
class Holds:
    """The trials' test hook (``IBSWEEP_TEST_HOLD``): trials wait at chosen epochs in ``folder``."""

    folder: Path

    def env(self, epochs=(), reached=(), labels=None) -> dict[str, str]:
        """The driver's environment that asks for holds at these epochs."""
        self.folder.mkdir(parents=True, exist_ok=True)
        spec = {"dir": str(self.folder), "epochs": list(epochs), "reached": list(reached)}
        if labels:
            spec["labels"] = list(labels)
        return {"IBSWEEP_TEST_HOLD": json.dumps(spec)}

    def held(self, epoch: int) -> list[str]:
        """The trials held at ``epoch`` now (their names)."""
        return sorted(p.name.split("@")[0] for p in self.folder.glob(f"*@{epoch}.held"))

    def wait(self, n: int, epoch: int, timeout: float, proc=None) -> bool:
        """Wait until ``n`` trials are held at ``epoch`` (False if ``proc`` ends first)."""
        return wait_for(lambda: len(self.held(epoch)) >= n, timeout, proc, every=0.2)

    def release(self, epoch: int) -> None:
        """Let every trial held at ``epoch`` go on."""
        (self.folder / f"go@{epoch}").touch()


def wait_for(predicate, timeout: float, proc=None, every: float = 0.5) -> bool:
    """Poll ``predicate`` until it holds (True), or ``timeout`` passes or ``proc`` ends (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (proc is None or proc.poll() is None):
        if predicate():
            return True
        time.sleep(every)
    return False


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_tree(proc: psutil.Process | subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to a process we started and to every process it started."""
    root = proc if isinstance(proc, psutil.Process) else psutil.Process(proc.pid)
    family = [root, *root.children(recursive=True)]
    for p in family:
        with suppress(psutil.NoSuchProcess):
            p.send_signal(sig)
    psutil.wait_procs(family, timeout=30)


class MlflowServer:
    """A real ``mlflow server`` on a loopback port that can be stopped and started again."""

    def __init__(self, folder: Path, workers: int = 1, port: int | None = None) -> None:
        self.folder, self.workers = folder, workers
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "mlflow-server.log"
        self.proc: subprocess.Popen | psutil.Process | None = None

    def save(self, path: Path) -> None:
        """Write what another test process needs to use (and stop) this running server."""
        spec = {"folder": str(self.folder), "workers": self.workers, "port": self.port,
                "pid": self.proc.pid}  # fmt: skip
        path.write_text(json.dumps(spec))

    @classmethod
    def load(cls, path: Path) -> MlflowServer:
        """The running server another test process started and saved to ``path``."""
        spec = json.loads(path.read_text())
        server = cls(Path(spec["folder"]), spec["workers"], spec["port"])
        with suppress(psutil.NoSuchProcess):  # (None if it has ended: nothing to stop)
            server.proc = psutil.Process(spec["pid"])
        return server

    def start(self, timeout: float = 120) -> str:
        """Start the server (same store, same port) and wait until it answers."""
        cmd = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
            "--artifacts-destination", str(self.folder / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
        ]  # fmt: skip
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no GenAI job runner
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return self.uri
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"mlflow server did not start: {self.log_path.read_text()[-2000:]}"
                )
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop the server and its workers (the store is kept)."""
        if self.proc is not None:
            kill_tree(self.proc, signal.SIGTERM)
            self.proc = None


class Link:
    """A TCP link from a loopback port of its own to a server, which a test cuts and restores.

    While it is cut, its clients get what a stopped server gives them: their connections are
    reset and a new one is refused. The server behind it runs on, so a test of an outage does
    not pay for stopping and starting it.
    """

    def __init__(self, server_port: int) -> None:
        self.server = ("127.0.0.1", server_port)
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None

    def restore(self) -> str:
        """Accept connections again (on the same port); returns the link's URI."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self.uri

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes its accept()
            listener.close()
        with self._lock:
            for sock in self._open:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # its carrier sees the end and closes it

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.server, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(target=self._carry, args=(client, upstream), daemon=True).start()

    def _carry(self, client: socket.socket, upstream: socket.socket) -> None:
        """Carry bytes both ways until either side ends (or the link is cut); then close both."""
        other = {client: upstream, upstream: client}
        with suppress(OSError):
            while _forward(other):
                pass
        with self._lock:
            self._open.difference_update(other)
        for sock in other:
            sock.close()


def _forward(other: dict[socket.socket, socket.socket]) -> bool:
    """Pass on what has arrived on either socket to the other; False once one has ended."""
    readable, _, _ = select.select(list(other), [], [])
    for sock in readable:
        data = sock.recv(65536)
        if not data:
            return False
        other[sock].sendall(data)
    return True


@dataclass
class RayCluster:
    """Ray nodes started by a test with ``ray start --block``: the head first, then workers."""

    root: Path
    port: int
    dashboard: str
    env: dict[str, str]
    nodes: list[subprocess.Popen | psutil.Process] = field(default_factory=list)

    def save(self, path: Path) -> None:
        """Write what another test process needs to use (and stop) this cluster."""
        spec = {"root": str(self.root), "port": self.port, "dashboard": self.dashboard,
                "env": self.env, "pids": [p.pid for p in self.nodes]}  # fmt: skip
        path.write_text(json.dumps(spec))

    @classmethod
    def load(cls, path: Path) -> RayCluster:
        """The cluster another test process started and saved to ``path``."""
        spec = json.loads(path.read_text())
        nodes = [psutil.Process(pid) for pid in spec.pop("pids")]
        return cls(**{**spec, "root": Path(spec["root"])}, nodes=nodes)

    @property
    def address(self) -> str:
        """The GCS address for ``ray.init`` / ``ibsweep run --address``."""
        return f"127.0.0.1:{self.port}"

    @property
    def driver_env(self) -> dict[str, str]:
        """The environment of an ibsweep process that runs its sweeps on this cluster."""
        return {**self.env, "RAY_ADDRESS": self.address}

    def _start(self, args: list[str], name: str, timeout: float) -> subprocess.Popen:
        ports = ["--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                 "--runtime-env-agent-port", "--metrics-export-port"]  # fmt: skip
        cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", *args]
        # no log monitor: ibsweep's drivers take no worker output (log_to_driver=False)
        cmd += [
            "--node-ip-address=127.0.0.1",
            "--disable-usage-stats",
            "--include-log-monitor=false",
        ]
        cmd += [f"{p}={free_port()}" for p in ports]
        cmd += [f"--temp-dir={self.root / name}"]
        log_path = self.root / f"{name}.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.nodes.append(proc)
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in log_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start {name} failed: {log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        return proc

    def start_head(self, cpus: int, dashboard: bool = True, timeout: float = 180) -> None:
        """Start the head node: GCS, and the dashboard with the job API, on 127.0.0.1."""
        dashboard_port = self.dashboard.rsplit(":", 1)[1]
        args = [
            "--head", f"--port={self.port}", f"--num-cpus={cpus}",
            f"--include-dashboard={str(dashboard).lower()}", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard_port}", f"--ray-client-server-port={free_port()}",
        ]  # fmt: skip
        self._start(args, "head", timeout)

    def add_node(self, cpus: int, timeout: float = 180) -> subprocess.Popen:
        """Start one more node that joins the head; returns its ``ray start`` process."""
        args = [f"--address={self.address}", f"--num-cpus={cpus}"]
        return self._start(args, f"node{len(self.nodes)}", timeout)

    def alive_nodes(self) -> int:
        """How many nodes the cluster counts as alive (asked from a separate driver)."""
        code = (
            "import ray; ray.init(address='auto', logging_level='ERROR'); "
            "print('ALIVE', sum(n['Alive'] for n in ray.nodes()))"
        )
        env = {**self.env, "RAY_ADDRESS": self.address}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        lines = [line for line in out.stdout.splitlines() if line.startswith("ALIVE")]
        return int(lines[-1].split()[1]) if lines else -1

    def wait_nodes(self, n: int, timeout: float = 180) -> None:
        """Wait until exactly ``n`` nodes are alive."""
        deadline = time.monotonic() + timeout
        while (alive := self.alive_nodes()) != n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{alive} nodes alive, expected {n}")
            time.sleep(1)

    def kill_node(self, proc: subprocess.Popen) -> None:
        """SIGKILL a node: its raylet and every process it started (a machine lost)."""
        kill_tree(proc, signal.SIGKILL)
        proc.wait(30)

    def stop(self) -> None:
        """Stop every node and every process that carries this cluster's token path, and
        remove the cluster's folder."""
        for proc in reversed(self.nodes):
            if isinstance(proc, subprocess.Popen) and proc.poll() is not None:
                continue  # a node a test killed: its pid may be another process's by now
            with suppress(psutil.NoSuchProcess):  # (psutil.Process refuses a reused pid)
                kill_tree(proc)  # SIGKILL: nothing of a test cluster is worth a graceful stop
        marker = self.env["RAY_AUTH_TOKEN_PATH"]
        strays = []
        for p in psutil.process_iter():
            with suppress(psutil.Error):
                if p.environ().get("RAY_AUTH_TOKEN_PATH") == marker:
                    strays.append(p)
        for p in strays:
            with suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(strays, timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def start_ray_cluster(
    workers: tuple[int, ...] = (1,), head_cpus: int = 1, env: dict | None = None,
    dashboard: bool = True,
) -> RayCluster:  # fmt: skip
    """A multi-node Ray cluster on this machine: a head and one node per entry of ``workers``.

    Token authentication is on with a token of its own (not ~/.ray/auth_token); ``env`` is
    what processes that talk to the cluster need (and what its nodes were started with).
    Its ``stop`` ends every process it started; ``ray stop`` is never used (it would stop
    every Ray of the machine).
    """
    root = Path(tempfile.mkdtemp(prefix="ibs-", dir="/tmp"))  # short: Ray's socket paths
    token = root / "token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    cluster_env = {
        **os.environ,
        **(env or {}),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
        # no idle workers prestarted for the first driver (they would idle out the session)
        "RAY_prestart_worker_first_driver": "0",
        # what ibsweep's trials need (sweep.cluster.ray_cluster.worker_env), set on the nodes
        # themselves: a driver then passes no runtime environment, whose workers start cold
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
        "RAY_CHDIR_TO_TRIAL_DIR": "0",
        # a job's entrypoint (`ibsweep run ...`) finds this interpreter's ibsweep first
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    cluster_env.pop("RAY_ADDRESS", None)
    cluster = RayCluster(root, free_port(), f"http://127.0.0.1:{free_port()}", cluster_env)
    try:
        cluster.start_head(head_cpus, dashboard)
        for cpus in workers:
            cluster.add_node(cpus)
        cluster.wait_nodes(1 + len(workers))
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextmanager
def ray_cluster(workers: tuple[int, ...] = (1,), head_cpus: int = 1, env: dict | None = None):
    """``start_ray_cluster`` for the block; every process it started is ended at exit."""
    cluster = start_ray_cluster(workers, head_cpus, env)
    try:
        yield cluster
    finally:
        cluster.stop()


def sweep_runs(uri: str, name: str):
    """The parent run(s) and the child runs of a sweep's experiment."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=10000)
    parents = [r for r in runs if r.data.tags.get("ibsweep.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("ibsweep.role") != "parent"]
    return client, parents, children


def metric_histories(client: MlflowClient, run_id: str, keys: list[str]) -> dict[str, list]:
    """Every point of each metric of a run, the keys asked for at once (a server has workers)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        points = pool.map(lambda key: client.get_metric_history(run_id, key), keys)
        return dict(zip(keys, points, strict=True))


def assert_histories_exact(
    client: MlflowClient, run, schedule: list[int], n_layers: int
) -> dict[str, list]:
    """Every metric of a finished run (every estimator of its panel, if it has one) has exactly
    one value at each scheduled epoch; returns the histories read."""
    from ibsweep.analysis import run_schema as rs

    panel = run.data.params.get(rs.PANEL)
    keys = rs.run_metric_keys(n_layers, panel.split(",") if panel else None)
    keys = [k for k in keys if not k.startswith(rs.GRAD_SNR)]
    assert len(keys) == 3 + 4 * n_layers * (len(panel.split(",")) if panel else 1)
    snr_keys = [f"grad_snr/layer{k}" for k in range(1, n_layers + 1)]
    histories = metric_histories(client, run.info.run_id, keys + snr_keys)
    for key in keys:
        steps = sorted(m.step for m in histories[key])
        assert steps == schedule, f"{run.info.run_name} {key}: steps {steps} != {schedule}"
    for key in snr_keys:
        steps = sorted(m.step for m in histories[key])
        assert steps == [s for s in schedule if s > 0], f"{key}: {steps}"
    return histories
