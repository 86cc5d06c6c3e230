"""End-to-end throughput: seed-epochs per second per core, with MI of every layer every epoch.

Run from the repository root:

    python bench/bench_throughput.py [--quick] [--json PATH] [--only-train | --only-panel]

Measures, for the classic 12-10-7-5-4-3-2 network on `tishby` (tanh, and the BNN with the STE):

- (a) a straightforward baseline in the same run: one seed at a time, a plain torch loop
  (nn.Sequential, DataLoader-free minibatches, torch.optim.Adam), a full-set forward pass each
  epoch, MI by np.digitize and np.unique over rows, rows collected in a list;
- (b) `ibsweep train`: ``sweep.single_run.train_single`` (the command's code) with packed seeds,
  its tidy table included, and the command itself once in a subprocess;
- the cost of an estimator panel: (b) with the per-layer defaults against a three-member panel
  (bin30, sign, exact), alternately in one process, the permuted-label baseline in both;
- (c) a sweep through Ray Tune and MLflow (``sweep.runner.run_sweep``) into a SQLite store in a
  temporary folder: the trial's wall time against the same work in-process;
- MLflow's ``log_batch`` write rate into SQLite and into a ``mlflow server`` started here on
  127.0.0.1 (stopped after), the rate of the bulk SQLite writer that sweeps use, and what each
  bounds (points per seed-epoch);
- the breakdown of an epoch and the arithmetic limit;
- how the cost grows with the number of samples (tishby, digits, a generated 60,000 x 784 array),
  the width and the number of seeds per trial, with the memory held.

Everything runs on one thread (torch, BLAS, OpenMP). Times are medians of several runs; the load
average of the machine is printed with each, since other jobs may share it. Rates are per core:
one core runs each measured process (the sweep's MLflow writer thread aside, see the README).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

from ibsweep.models.config import ModelConfig, TrainConfig  # noqa: E402
from ibsweep.models.datasets import Dataset, load_dataset, split_indices  # noqa: E402
from ibsweep.models.training import Trainer  # noqa: E402
from ibsweep.sweep.training.meter import LayerMeter, permuted_labels  # noqa: E402
from ibsweep.sweep.training.single_run import record_columns, train_single  # noqa: E402

TANH = ModelConfig()
BNN = ModelConfig(kind="bnn", activation="ste")
# loss, accuracies; per layer I(X;T), I(T;Y), I(T;Y) under permuted labels, states, grad SNR
POINTS_PER_SEED_EPOCH = 3 + 5 * 6
PANEL = {"bin30": ("binning", {}), "sign": ("binning", {"n_bins": 2}), "exact": ("exact", {})}


def load() -> float:
    """The 1-minute load average (other jobs on the machine)."""
    return round(os.getloadavg()[0], 2)


def rss_mib() -> float:
    """Resident memory of this process in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def rates(work: float, fn: Callable[[], object], repeats: int) -> dict:
    """Median seed-epochs per second (wall and CPU time) over repeats, with the load."""
    walls, cpus, loads = [], [], []
    for _ in range(repeats):
        loads.append(load())
        wall, cpu = timed(fn)
        walls.append(wall)
        cpus.append(cpu)
    return {
        "per_s": work / statistics.median(walls),
        "per_cpu_s": work / statistics.median(cpus),
        "ms_per_seed_epoch": 1e3 * statistics.median(walls) / work,
        "runs": repeats,
        "load": loads,
    }


# (a) the straightforward baseline


def _mi_unique(t: np.ndarray, y: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """I(X;T) = H(T) and I(T;Y) of a layer binned into 30 bins on [lo, hi], by np.unique."""
    codes = np.digitize(t, np.linspace(lo, hi, 31)[1:-1])
    _, t_counts = np.unique(codes, axis=0, return_counts=True)
    _, ty_counts = np.unique(np.column_stack([codes, y]), axis=0, return_counts=True)
    _, y_counts = np.unique(y, return_counts=True)

    def h(c: np.ndarray) -> float:
        p = c / c.sum()
        return float(-(p * np.log2(p)).sum())

    h_t = h(t_counts)
    return h_t, h_t + h(y_counts) - h(ty_counts)


def baseline_run(data: Dataset, seed: int, epochs: int) -> list[dict]:
    """One seed, a plain torch loop; MI of every layer every epoch by np.unique over rows."""
    torch.manual_seed(seed)
    dims = (data.n_features, 10, 7, 5, 4, 3, data.n_classes)
    mods: list[torch.nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(dims):
        mods += [torch.nn.Linear(fan_in, fan_out), torch.nn.Tanh()]
    net = torch.nn.Sequential(*mods[:-1])
    opt = torch.optim.Adam(net.parameters(), lr=4e-4)
    x, y = torch.as_tensor(data.x), torch.as_tensor(data.y)
    train_idx, test_idx = (torch.as_tensor(i) for i in split_indices(data, seed))
    rows = []
    for epoch in range(1, epochs + 1):
        order = train_idx[torch.randperm(len(train_idx))]
        for start in range(0, len(order), 256):
            batch = order[start : start + 256]
            loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            layers, h = [], x
            for mod in net:
                h = mod(h)
                if isinstance(mod, torch.nn.Tanh):
                    layers.append(h.numpy())
            layers.append(torch.softmax(h, dim=1).numpy())
            pred = h.argmax(dim=1)
            full_loss = torch.nn.functional.cross_entropy(h[train_idx], y[train_idx]).item()
        for k, t in enumerate(layers):
            lo = 0.0 if k == len(layers) - 1 else -1.0
            i_xt, i_ty = _mi_unique(t, data.y, lo, 1.0)
            rows.append(
                {
                    "seed": seed,
                    "epoch": epoch,
                    "layer": k + 1,
                    "loss": full_loss,
                    "train_acc": (pred[train_idx] == y[train_idx]).float().mean().item(),
                    "test_acc": (pred[test_idx] == y[test_idx]).float().mean().item(),
                    "i_xt": i_xt,
                    "i_ty": i_ty,
                }
            )
    return rows


# (b) ibsweep train


def packed_run(
    model: ModelConfig, data: Dataset, n_seeds: int, epochs: int, panel: dict | None = None
) -> None:
    """``ibsweep train`` in-process: packed seeds, MI every epoch (with the permuted-label
    baseline; every member of ``panel`` if given), the tidy table."""
    meter = LayerMeter(model, panel=panel)
    train_single(model, TrainConfig(epochs=epochs), data, list(range(n_seeds)), meter)


def panel_cost(model: ModelConfig, data: Dataset, n_seeds: int, epochs: int, pairs: int) -> dict:
    """``ibsweep train`` with the per-layer defaults against a three-member panel (bin30, sign,
    exact), alternately in the same process: seed-epochs per second (wall and CPU), and the
    panel's share of the one-estimator rate, per pair and as the median."""
    one: list[tuple[float, float]] = []
    three: list[tuple[float, float]] = []
    loads = []
    for _ in range(pairs):
        loads.append(load())
        one.append(timed(lambda: packed_run(model, data, n_seeds, epochs)))
        three.append(timed(lambda: packed_run(model, data, n_seeds, epochs, PANEL)))
    work = n_seeds * epochs
    wall = [a[0] / b[0] for a, b in zip(one, three, strict=True)]
    cpu = [a[1] / b[1] for a, b in zip(one, three, strict=True)]
    return {
        "one_per_s": work / statistics.median(w for w, _ in one),
        "panel_per_s": work / statistics.median(w for w, _ in three),
        "one_per_cpu_s": work / statistics.median(c for _, c in one),
        "panel_per_cpu_s": work / statistics.median(c for _, c in three),
        "kept_wall": statistics.median(wall),
        "kept_cpu": statistics.median(cpu),
        "kept_wall_pairs": wall,
        "kept_cpu_pairs": cpu,
        "pairs": pairs,
        "load": loads,
    }


def cli_run(n_seeds: int, epochs: int, out: Path, panel: dict | None = None) -> dict:
    """The command itself in a subprocess, once: wall time including Python and torch start."""
    cmd = [
        sys.executable, "-m", "ibsweep.sweep.cli", "train", "--seeds", str(n_seeds),
        "--epochs", str(epochs), "--quiet", "--out", str(out),
    ]  # fmt: skip
    for member, (name, params) in (panel or {}).items():
        spec = ",".join(f"{k}={v}" for k, v in params.items())
        cmd += ["--estimator", f"{member}={name}{':' if spec else ''}{spec}"]
    before = load()
    wall = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - wall
    return {"command": "ibsweep " + " ".join(cmd[3:]), "wall_s": wall, "load": before}


# (c) a sweep through Ray Tune and MLflow


SWEEP_FILE = """name: bench-throughput
grid:
  kind: [{kind}]
  activation: {{{kind}: [{activation}]}}
  widths: [[10, 7, 5, 4, 3]]
  dataset: [tishby]
  seeds: {seeds}
seeds_per_trial: {seeds}
train: {{epochs: {epochs}}}
mi: {{every: 1}}
resources: {{cpu: 1}}
tracking: {{uri: "sqlite:///{folder}/mlflow.db"}}
storage: {folder}/tune
"""


def sweep_run(model: ModelConfig, n_seeds: int, epochs: int) -> dict:
    """One trial of packed seeds through ``ibsweep run`` (``run_sweep``); Tune's trial time.

    A subprocess, so that Ray's processes and threads stay out of the other measurements.
    """
    folder = Path(tempfile.mkdtemp(prefix="ibsweep-bench-"))
    spec = folder / "sweep.yaml"
    spec.write_text(
        SWEEP_FILE.format(
            kind=model.kind,
            activation=model.activation,
            seeds=n_seeds,
            epochs=epochs,
            folder=folder,
        )
    )
    before = load()
    wall = time.perf_counter()
    code = subprocess.run(
        [sys.executable, "-m", "ibsweep.sweep.cli", "run", str(spec), "--no-analyze"],
        cwd=folder, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - wall
    if code.returncode != 0:
        raise RuntimeError(f"sweep failed: {code.stderr[-2000:]}")
    results = [
        json.loads(line)
        for path in folder.glob("tune/**/result.json")
        for line in path.read_text().splitlines()
    ]
    first = min(r["time_total_s"] for r in results)
    trial = max(r["time_total_s"] for r in results)
    # steady state: from the first report 5 s into training (start-up, such as loading the
    # compiled kernels, behind it) to the end, the final flush and the runs' ending included
    timed = sorted((r["time_total_s"], r["epoch"]) for r in results if "epoch" in r)
    start = next(t for t in timed if t[0] >= first + 5.0)
    with sqlite3.connect(folder / "mlflow.db") as db:
        points = db.execute(
            "SELECT COUNT(*) FROM metrics WHERE run_uuid IN "
            "(SELECT run_uuid FROM tags WHERE key = 'ibsweep.key')"
        ).fetchone()[0]
    work = n_seeds * epochs
    return {
        "trial_s": trial,
        "setup_s": first,
        "sweep_wall_s": wall,
        "per_s_trial": work / trial,
        "per_s_after_setup": work / (trial - first),
        "per_s_steady": n_seeds * (timed[-1][1] - start[1]) / (timed[-1][0] - start[0]),
        "per_s_sweep": work / wall,
        "points": points,
        "points_expected": n_seeds * ((epochs + 1) * POINTS_PER_SEED_EPOCH - 6),
        "load": before,
    }


def quick_yaml(seeds_per_trial: int, repeats: int) -> dict:
    """Median wall time of ``ibsweep run examples/quick.yaml`` with this packing."""
    walls, loads = [], []
    for _ in range(repeats):
        folder = Path(tempfile.mkdtemp(prefix="ibsweep-bench-quick-"))
        text = (ROOT / "examples" / "quick.yaml").read_text()
        text = "\n".join(
            line for line in text.splitlines() if not line.startswith(("tracking:", "seeds_per"))
        )
        text += (
            f"\ntracking: {{uri: 'sqlite:///{folder}/mlflow.db'}}\nstorage: {folder}/tune\n"
            f"seeds_per_trial: {seeds_per_trial}\n"
        )
        (folder / "quick.yaml").write_text(text)
        loads.append(load())
        wall = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "ibsweep.sweep.cli", "run", "quick.yaml", "--no-analyze"],
            cwd=folder, check=True, capture_output=True,
        )  # fmt: skip
        walls.append(time.perf_counter() - wall)
    return {"wall_s": statistics.median(walls), "runs": repeats, "load": loads}


# MLflow write rates


def write_rate(uri: str, n_points: int, repeats: int) -> dict:
    """Points per second that ``log_batch`` (1000 per call, one run) writes into a store."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.create_experiment(f"rate-{time.time_ns()}")
    per_s = []
    for _ in range(repeats):
        run = client.create_run(exp).info.run_id
        ts = int(time.time() * 1000)
        points = [Metric(f"I_XT/layer{i % 6 + 1}", 0.5, ts, i // 6) for i in range(n_points)]
        wall = time.perf_counter()
        for i in range(0, n_points, 1000):
            client.log_batch(run, metrics=points[i : i + 1000], synchronous=True)
        per_s.append(n_points / (time.perf_counter() - wall))
    rate = statistics.median(per_s)
    return {"points_per_s": rate, "seed_epochs_per_s": rate / POINTS_PER_SEED_EPOCH}


def bulk_write_rate(n_runs: int, n_epochs: int, repeats: int) -> dict:
    """Points per second of the sweeps' SQLite writer, in flushes of ``n_epochs`` epochs."""
    from mlflow.tracking import MlflowClient

    from ibsweep.analysis.run_schema import run_metric_keys
    from ibsweep.analysis.sqlite_metrics import SqliteMetricWriter

    keys = run_metric_keys(6)
    per_s = []
    for _ in range(repeats):
        folder = tempfile.mkdtemp(prefix="ibsweep-bench-bulk-")
        uri = f"sqlite:///{folder}/rate.db"
        client = MlflowClient(uri)
        exp = client.create_experiment("bulk")
        runs = [client.create_run(exp).info.run_id for _ in range(n_runs)]
        writer = SqliteMetricWriter(uri)
        wall, n = 0.0, 0
        for first in range(0, 10 * n_epochs, n_epochs):  # ten flushes
            ts = int(time.time() * 1000)
            steps = range(first, first + n_epochs)
            flush = {
                r: [(k, 0.5 + j, ts, s) for s in steps for j, k in enumerate(keys)] for r in runs
            }
            t = time.perf_counter()
            n += writer.write(flush)
            wall += time.perf_counter() - t
        writer.close()
        per_s.append(n / wall)
    rate = statistics.median(per_s)
    return {"points_per_s": rate, "seed_epochs_per_s": rate / POINTS_PER_SEED_EPOCH}


def server_write_rate(n_points: int, repeats: int) -> dict:
    """The same against a ``mlflow server`` on 127.0.0.1 (SQLite behind it), stopped after."""
    folder = Path(tempfile.mkdtemp(prefix="ibsweep-bench-server-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{folder}/server.db",
        "--default-artifact-root", str(folder / "artifacts"), "--workers", "1",
    ]  # fmt: skip
    server = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("mlflow server did not start") from None
                time.sleep(0.5)
        return write_rate(f"http://127.0.0.1:{port}", n_points, repeats)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


# breakdown and arithmetic limit


def epoch_breakdown(
    model: ModelConfig, n_seeds: int, epochs: int, panel: dict | None = None
) -> dict:
    """Median ms per seed-epoch of each part of an epoch: CPU time of the training thread.

    The MLflow part is what the training thread spends handing the points to the sink (the
    per-layer numbers as one row per seed, one dict and point tuples per seed); the sink's
    background thread writes them, on its own time. MI includes the permuted-label baseline,
    and every member of ``panel`` if given.
    """
    from mlflow.tracking import MlflowClient

    from ibsweep.analysis.sqlite_metrics import bulk_writer
    from ibsweep.sweep.tracking.sink import MetricSink
    from ibsweep.sweep.tuning.trainable import epoch_metrics, mi_values

    data = load_dataset("tishby")
    trainer = Trainer(model, TrainConfig(epochs=epochs + 1), data, list(range(n_seeds)))
    meter = LayerMeter(model, panel=panel)
    labels = trainer.measure_labels
    perm = permuted_labels(labels, trainer.seeds)
    members = meter.members
    bits = meter.max_bits((*model.widths, data.n_classes))
    ceilings = np.minimum(12.0, np.array([bits[m] for m in members]))
    folder = tempfile.mkdtemp(prefix="ibsweep-bench-sink-")
    uri = f"sqlite:///{folder}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("sink")
    runs = [client.create_run(exp).info.run_id for _ in range(n_seeds)]
    sink = MetricSink(client, bulk=bulk_writer(uri))
    parts: dict[str, list[float]] = {}
    next(trainer.run())  # epoch 0
    clock = time.thread_time
    for _ in range(epochs):
        trainer.epoch += 1
        t0 = clock()
        snr = trainer._train_epoch()
        t1 = clock()
        record = trainer._evaluate(snr, True)
        t2 = clock()
        est = meter.estimate(record.layers, labels, perm)
        t3 = clock()
        record_columns(record, trainer.seeds, est, members, ceilings)
        t4 = clock()
        values = mi_values(est)
        for s in range(n_seeds):
            sink.add(runs[s], epoch_metrics(record, s, values[s], members), record.epoch)
        t5 = clock()
        for name, a, b in (
            ("training (13 minibatch steps)", t0, t1),
            ("forward pass for MI and metrics", t1, t2),
            ("MI estimation, all layers", t2, t3),
            ("logging: tidy table (b)", t3, t4),
            ("logging: MLflow sink, training thread (c)", t4, t5),
        ):
            parts.setdefault(name, []).append(1e3 * (b - a) / n_seeds)
    sink.close()
    return {k: statistics.median(v) for k, v in parts.items()}


def arithmetic_limit(n_train: int, n_measure: int, widths: tuple[int, ...]) -> dict:
    """Multiply-adds of one seed-epoch and their time at this core's large-matmul speed."""
    dims = (12, *widths, 2)
    macs = sum(a * b for a, b in itertools.pairwise(dims))
    work = 3 * macs * n_train + macs * n_measure  # forward+backward (x3), one full-set forward
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    wall = min(timed(lambda: a @ b)[0] for _ in range(5))
    gmacs = 1024**3 / wall / 1e9
    keys = np.random.default_rng(0).integers(0, 2**50, size=4096)
    sort_us = 1e6 * min(timed(lambda: np.sort(keys))[0] for _ in range(50))
    return {
        "macs_per_seed_epoch": work,
        "matmul_gmacs": gmacs,
        "matmul_ms_per_seed_epoch": 1e3 * work / (gmacs * 1e9),
        "sort_4096_int64_us": sort_us,
    }


# scaling


def mnist_sized() -> Dataset:
    """A 60,000 x 784 float32 array with 10 random classes, generated here (no download)."""
    rng = np.random.default_rng(0)
    return Dataset(
        name="mnist-sized",
        x=rng.random((60000, 784), dtype=np.float32),
        y=rng.integers(0, 10, size=60000),
        n_classes=10,
        input_shape=(784,),
        binary_inputs=False,
        official_split=None,
        default_measure="full",
    )


def scaling_point(model: ModelConfig, data: Dataset, n_seeds: int, epochs: int, reps: int) -> dict:
    """Seed-epochs per second of ``ibsweep train`` and the memory it holds."""
    before = rss_mib()
    out = rates(n_seeds * epochs, lambda: packed_run(model, data, n_seeds, epochs), reps)
    out["rss_growth_mib"] = rss_mib() - before
    return out


def memory_bounded(model: ModelConfig, n_seeds: int, epochs: int) -> dict:
    """Resident memory after a tenth of the epochs and at the end of one run."""
    data = load_dataset("tishby")
    trainer = Trainer(model, TrainConfig(epochs=epochs), data, list(range(n_seeds)))
    meter = LayerMeter(model)
    labels = trainer.measure_labels
    perm = permuted_labels(labels, trainer.seeds)
    seen = {}
    for record in trainer.run():
        meter.estimate(record.layers, labels, perm)
        if record.epoch in (epochs // 10, epochs):
            seen[record.epoch] = rss_mib()
    return {"epochs": epochs, "rss_mib": seen}


def finish(res: dict, json_path: str | None) -> None:
    """Note the load at the end and write the results as JSON if asked."""
    res["load_end"] = load()
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=1, default=float))


def panel_section(
    res: dict, data: Dataset, seeds: int, epochs: int, reps: int, show: Callable
) -> None:
    """The panel's cost: rates of one estimator against the panel, breakdowns, the command."""
    for name, model in (("tanh", TANH), ("bnn_ste", BNN)):
        packed_run(model, data, seeds, 1, PANEL)  # once: numba's cached kernels load
        res[f"panel_{name}"] = panel_cost(model, data, seeds, epochs, reps)
        show(f"panel cost, ibsweep train, {seeds} seeds, {name}", res[f"panel_{name}"])
    for label, panel in (("one", None), ("panel", PANEL)):
        key = f"breakdown_tanh_{label}"
        res[key] = epoch_breakdown(TANH, seeds, max(5, epochs // 5), panel)
        show(f"epoch breakdown, ms per seed-epoch (CPU), tanh, {label}", res[key])
    with tempfile.TemporaryDirectory() as tmp:
        one = cli_run(seeds, epochs, Path(tmp) / "one.parquet")
        three = cli_run(seeds, epochs, Path(tmp) / "panel.parquet", PANEL)
    res["panel_cli"] = {"one": one, "panel": three, "kept_wall": one["wall_s"] / three["wall_s"]}
    show("the command in a subprocess, once each", res["panel_cli"])


def main() -> None:
    """Run every measurement, print it, and optionally write it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repetitions")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--skip-sweep", action="store_true", help="no Ray Tune sweep, no server")
    parser.add_argument(
        "--only-train",
        action="store_true",
        help="only (a), (b) in-process and the epoch breakdown (no command, sweep or scaling)",
    )
    parser.add_argument(
        "--only-sweep",
        action="store_true",
        help="only (a), (b) for tanh in-process, (c) and the stores' write rates",
    )
    parser.add_argument(
        "--only-panel",
        action="store_true",
        help="only the panel's cost: (b) with one estimator against a three-member panel, "
        "both epoch breakdowns, and the command with the panel once",
    )
    parser.add_argument(
        "--packing",
        action="store_true",
        help="also time examples/quick.yaml at 1 and 3 seeds/trial",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    q = args.quick
    reps = 2 if q else 5
    e_a, e_b, e_c = (5, 20, 20) if q else (20, 100, 300)
    seeds = 64
    tishby = load_dataset("tishby")
    res: dict = {
        "machine": {
            "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "threads": torch.get_num_threads(),
        },
        "command": " ".join(["python", "bench/bench_throughput.py", *sys.argv[1:]]),
    }

    def show(name: str, value: object) -> None:
        print(f"{name}: {json.dumps(value, default=float)}", flush=True)

    if args.only_panel:
        panel_section(res, tishby, seeds, e_b, reps, show)
        finish(res, args.json)
        return
    res["a_baseline"] = rates(e_a, lambda: baseline_run(tishby, 0, e_a), max(2, reps - 2))
    show("(a) baseline, one seed, plain torch, np.unique", res["a_baseline"])
    models = (("tanh", TANH),) if args.only_sweep else (("tanh", TANH), ("bnn_ste", BNN))
    for name, model in models:
        packed_run(model, tishby, seeds, 1)  # once: numba's cached kernels load on first use
        r = rates(seeds * e_b, lambda m=model: packed_run(m, tishby, seeds, e_b), reps)
        r["vs_a"] = r["per_s"] / res["a_baseline"]["per_s"]
        res[f"b_train_{name}"] = r
        show(f"(b) ibsweep train, {seeds} seeds packed, {name}", r)
    if args.only_train:
        for name, model in (("tanh", TANH), ("bnn_ste", BNN)):
            res[f"breakdown_{name}"] = epoch_breakdown(model, seeds, 5 if q else 20)
            show(f"epoch breakdown, ms per seed-epoch (CPU), {name}", res[f"breakdown_{name}"])
        finish(res, args.json)
        return
    if not args.only_sweep:
        with tempfile.TemporaryDirectory() as tmp:
            res["b_cli"] = cli_run(seeds, e_b, Path(tmp) / "t.parquet")
        res["b_cli"]["per_s"] = seeds * e_b / res["b_cli"]["wall_s"]
        show("(b) the command in a subprocess, once", res["b_cli"])
    if not args.skip_sweep:
        sweeps = [sweep_run(TANH, seeds, e_c) for _ in range(1 if q else 3)]
        res["c_sweep"] = {
            **sweeps[0],
            **{
                k: statistics.median(s[k] for s in sweeps)
                for k in (
                    "trial_s",
                    "setup_s",
                    "sweep_wall_s",
                    "per_s_trial",
                    "per_s_after_setup",
                    "per_s_steady",
                )
            },
            "per_s_steady_runs": [s["per_s_steady"] for s in sweeps],
            "per_s_after_setup_runs": [s["per_s_after_setup"] for s in sweeps],
            "load": [s["load"] for s in sweeps],
            "runs": len(sweeps),
        }
        res["c_sweep"]["vs_a"] = res["c_sweep"]["per_s_trial"] / res["a_baseline"]["per_s"]
        # what Tune, MLflow and the trial's process add to the same work in-process
        for rate in ("per_s_after_setup", "per_s_steady"):
            trial_ms = 1e3 / res["c_sweep"][rate]
            overhead = trial_ms - res["b_train_tanh"]["ms_per_seed_epoch"]
            res["c_sweep"][f"overhead_ms_per_seed_epoch_{rate}"] = overhead
            res["c_sweep"][f"overhead_fraction_of_trial_{rate}"] = overhead / trial_ms
        show(
            f"(c) sweep through Ray Tune + MLflow (SQLite), {seeds} seeds, 1 trial", res["c_sweep"]
        )
        folder = tempfile.mkdtemp(prefix="ibsweep-bench-rate-")
        n_points = 10_000 if q else 30_000
        res["mlflow_sqlite"] = write_rate(f"sqlite:///{folder}/rate.db", n_points, 3)
        show("MLflow log_batch into SQLite", res["mlflow_sqlite"])
        res["bulk_sqlite"] = bulk_write_rate(seeds, 30, 3)
        show("bulk SQLite writer (sweeps), 64 runs, 30 epochs per flush", res["bulk_sqlite"])
        res["mlflow_server"] = server_write_rate(n_points, 3)
        show("MLflow log_batch into a local mlflow server", res["mlflow_server"])
    if args.only_sweep:
        finish(res, args.json)
        return
    panel_section(res, tishby, seeds, e_b, reps, show)
    for name, model in (("tanh", TANH), ("bnn_ste", BNN)):
        res[f"breakdown_{name}"] = epoch_breakdown(model, seeds, 5 if q else 20)
        show(f"epoch breakdown, ms per seed-epoch (CPU), {name}", res[f"breakdown_{name}"])
    res["arithmetic"] = arithmetic_limit(3277, 4096, (10, 7, 5, 4, 3))
    show("arithmetic limit", res["arithmetic"])
    scale: dict = {"samples": {}, "width": {}, "seeds": {}}
    e_s = 5 if q else 60
    for name, data, n_seeds, epochs in (
        ("tishby (4,096 x 12)", tishby, 16, e_s),
        ("digits (1,797 x 64)", load_dataset("digits"), 16, e_s),
        ("generated (60,000 x 784)", mnist_sized(), 4, 1 if q else 2),
    ):
        scale["samples"][name] = scaling_point(TANH, data, n_seeds, epochs, 1 if q else 3)
        scale["samples"][name]["seeds"] = n_seeds
        show(f"scaling, samples: {name}", scale["samples"][name])
    for widths in ((10, 7, 5, 4, 3), (20, 14, 10, 8, 6), (40, 28, 20, 16, 12), (80, 40, 20)):
        model = ModelConfig(widths=widths)
        label = "-".join(map(str, widths))
        scale["width"][label] = scaling_point(model, tishby, 16, e_s, 1 if q else 3)
        show(f"scaling, widths {label}", scale["width"][label])
    for n_seeds in (1, 4, 16, 64, 128):
        epochs = min(max(1600 // n_seeds, 10), 200) if q else min(max(6400 // n_seeds, 20), 400)
        scale["seeds"][n_seeds] = scaling_point(TANH, tishby, n_seeds, epochs, 1 if q else 3)
        show(f"scaling, seeds per trial {n_seeds}", scale["seeds"][n_seeds])
    res["scaling"] = scale
    res["memory"] = memory_bounded(TANH, seeds, 50 if q else 300)
    show("memory held by one run (RSS after a tenth of the epochs and at the end)", res["memory"])
    if args.packing:
        res["quick_yaml"] = {k: quick_yaml(k, 2 if q else 3) for k in (1, 3)}
        show("examples/quick.yaml by seeds_per_trial", res["quick_yaml"])
    finish(res, args.json)


if __name__ == "__main__":
    main()
