"""The ``ibsweep`` command line: its parser and the dispatch to each command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError

from ibsweep.models.config import (
    ACTIVATIONS,
    BNN_ACTIVATIONS,
    BNN_NORMS,
    DNN_ACTIVATIONS,
    KINDS,
    LR_SCHEDULES,
    OPTIMIZERS,
    PRECISIONS,
    ModelConfig,
    TrainConfig,
    describe_validation_error,
)
from ibsweep.sweep.errors import UsageError

if TYPE_CHECKING:
    from ibsweep.sweep.training.meter import LayerMeter

_FILE_HELP = (
    "sweep file (YAML), or the name of a shipped example: quick, paper, digits, mnist5k, mnist"
)


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.replace("x", ",").split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"widths '{text}' must be positive integers separated by commas, e.g. 10,7,5,4,3"
        ) from None
    return widths


def _positive_int(text: str) -> int:
    value = int(text) if text.strip().isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' must be a whole number of at least 1")
    return value


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="folder holding the dataset's files (mnist, cifar10, ...)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from ibsweep.models.datasets import DATASETS

    parser = argparse.ArgumentParser(
        prog="ibsweep",
        description="Information-plane sweeps of DNNs and BNNs. With no command: the default job.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("data", help="describe a dataset (size, shape, classes, label entropy)")
    p.add_argument("name", choices=DATASETS, metavar="NAME", help=f"one of {', '.join(DATASETS)}")
    _add_data_args(p)
    p.add_argument("--export", metavar="PATH.npz", help="write x, y, train_idx, test_idx")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test split")

    p = sub.add_parser("train", help="train one configuration in-process, write a tidy table")
    p.add_argument("--kind", default="dnn", help=f"one of {', '.join(KINDS)}")
    p.add_argument(
        "--activation",
        help=f"dnn: {', '.join(DNN_ACTIVATIONS)} (default tanh); "
        f"bnn: {', '.join(BNN_ACTIVATIONS)} (default ste)",
    )
    p.add_argument("--widths", type=_widths, default=(10, 7, 5, 4, 3), help="e.g. 10,7,5,4,3")
    p.add_argument("--beta", type=float, default=5.0, help="SwishSign sharpness (bnn)")
    bnn = ModelConfig()
    p.add_argument(
        "--bnn-norm",
        default=bnn.bnn_norm,
        help=f"bnn pre-activation: {' or '.join(BNN_NORMS)} (default {bnn.bnn_norm})",
    )
    for layer, what in (("first", "the first layer's (on the input)"), ("last", "the logits'")):
        default = getattr(bnn, f"bnn_{layer}")
        p.add_argument(
            f"--bnn-{layer}",
            default=default,
            help=f"bnn: {what} weights, {' or '.join(PRECISIONS)} (default {default})",
        )
    p.add_argument("--dataset", default="tishby", help=f"one of {', '.join(DATASETS)}")
    _add_data_args(p)
    p.add_argument("--measure-on", help="set MI is measured on: full, train or test")
    p.add_argument("--epochs", type=int, default=1500)
    p.add_argument("--optimizer", default="adam", help=f"one of {', '.join(OPTIMIZERS)}")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument(
        "--lr-schedule",
        default="constant",
        help=f"one of {', '.join(LR_SCHEDULES)}: the lr decays from --lr to "
        "--lr * --final-lr-factor at the last epoch",
    )
    p.add_argument(
        "--final-lr-factor",
        type=float,
        default=TrainConfig().final_lr_factor,
        help="last epoch's lr / --lr for exponential and cosine (default %(default)s)",
    )
    p.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument(
        "--seeds", type=int, default=1, help="train K seeds (seed..seed+K-1) packed in one process"
    )
    p.add_argument("--mi-every", type=int, default=1, help="measure MI every k epochs")
    p.add_argument(
        "--estimator",
        action="append",
        metavar="[NAME=]SPEC",
        help="SPEC: one estimator for every layer, e.g. kde or binning:n_bins=50,range=layer "
        "(default: exact for binary layers and a BNN's output, 30-bin binning otherwise); "
        "NAME=SPEC, repeated: a panel, each member measured on every layer with the layer "
        "type's defaults for the parameters not given, e.g. --estimator bin30=binning "
        "--estimator sign=binning:n_bins=2 --estimator exact=exact",
    )
    p.add_argument("--out", help="table path: .parquet, else CSV (default: none)")
    p.add_argument("--quiet", action="store_true", help="no progress line")

    p = sub.add_parser("plan", help="show a sweep file's expanded grid without running it")
    p.add_argument("file", metavar="FILE", help=_FILE_HELP)

    p = sub.add_parser("run", help="run (or resume) a sweep with Ray Tune, tracked in MLflow")
    p.add_argument("file", metavar="FILE", help=_FILE_HELP)
    p.add_argument(
        "--tracking-uri",
        help="MLflow store (default: $MLFLOW_TRACKING_URI, "
        "the file's tracking.uri, else sqlite:///mlflow.db)",
    )
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else local)")
    p.add_argument("--restart", action="store_true", help="start over instead of resuming")
    p.add_argument("--no-analyze", action="store_true", help="skip the analysis at the end")

    p = sub.add_parser("analyze", help="phase boundaries, verdicts and comparisons of a sweep")
    p.add_argument("name", metavar="NAME", help="the sweep's name (its MLflow experiment)")
    p.add_argument(
        "--tracking-uri",
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    p.add_argument("--out", help="output folder (default: ./ibsweep-results/NAME)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="settings",
        help="an analysis setting (repeatable), over the sweep file's analysis: block, "
        "e.g. --set min_compression_bits=0.5",
    )
    p.add_argument(
        "--log-to-mlflow",
        action="store_true",
        help="write statistics, verdicts, report and settings into the MLflow store "
        "(default: read-only)",
    )

    p = sub.add_parser("submit", help="submit a sweep to a Ray cluster through its job API")
    p.add_argument("file", metavar="FILE", help=_FILE_HELP)
    p.add_argument("--address", help="Ray job API, e.g. http://HEAD:8265 (default: $RAY_ADDRESS)")
    p.add_argument(
        "--tracking-uri",
        help="the cluster's MLflow server (default: $MLFLOW_TRACKING_URI on the cluster)",
    )
    p.add_argument("--no-wait", action="store_true", help="return once the job is submitted")

    p = sub.add_parser("ui", help="the MLflow UI on a store, bound to 127.0.0.1")
    p.add_argument("--tracking-uri", help="MLflow store (default: sqlite:///mlflow.db)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="server processes (default 1: one person's browser; MLflow's own default is 4)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ibsweep`` console command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_process(args)
    try:
        if args.command is None:
            return _default_job()
        if args.command == "data":
            from ibsweep.sweep.cli.data_command import describe_dataset

            return describe_dataset(args.name, args.data_dir, args.export, args.seed)
        if args.command == "train":
            return _train(args)
        if args.command == "plan":
            from ibsweep.sweep.cli.plan_command import print_plan

            return print_plan(args.file)
        if args.command == "run":
            from ibsweep.sweep.cli.run_command import run_command

            return run_command(
                args.file, args.tracking_uri, args.address, args.restart, not args.no_analyze
            )
        if args.command == "analyze":
            from ibsweep.sweep.cli.analyze_command import analyze_command

            return analyze_command(
                args.name, args.tracking_uri, args.out, args.settings, args.log_to_mlflow
            )
        if args.command == "submit":
            from ibsweep.sweep.cli.submit_command import submit_command

            return submit_command(args.file, args.address, args.tracking_uri, not args.no_wait)
        if args.command == "ui":
            return _ui(args.tracking_uri, args.port, args.workers)
    except UsageError as err:
        print(f"ibsweep: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    parser.error(f"unknown command {args.command}")
    return 2


class _Stderr(logging.Handler):
    """Log messages as plain lines on whatever ``sys.stderr`` is when they come."""

    def emit(self, record: logging.LogRecord) -> None:
        """Print the record's message."""
        print(record.getMessage(), file=sys.stderr)


def _configure_process(args: argparse.Namespace) -> None:
    """Settings of this whole process, which only the command line makes: messages of the
    library's logger on stderr, Ray's token authentication (Ray reads it at import), no
    progress bars from MLflow's downloads."""
    logger = logging.getLogger("ibsweep")
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        logger.addHandler(_Stderr())
        logger.setLevel(logging.INFO)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if args.command in ("run", "submit", None) and (
        getattr(args, "address", None) or os.environ.get("RAY_ADDRESS")
    ):
        from ibsweep.sweep.cluster.ray_cluster import enable_ray_token

        enable_ray_token()


def _configs(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig]:
    if args.kind not in KINDS:
        raise UsageError(f"unknown kind '{args.kind}'; allowed: {', '.join(KINDS)}")
    activation = args.activation or ("tanh" if args.kind == "dnn" else "ste")
    known = sorted({a for acts in ACTIVATIONS.values() for a in acts})
    if activation not in known:
        raise UsageError(f"unknown activation '{activation}'; allowed: {', '.join(known)}")
    try:
        model = ModelConfig(
            kind=args.kind,
            activation=activation,
            widths=args.widths,
            beta=args.beta,
            bnn_norm=args.bnn_norm,
            bnn_first=args.bnn_first,
            bnn_last=args.bnn_last,
        )
    except ValidationError as err:
        raise UsageError(_flag_error(err)) from None
    try:
        train = TrainConfig(
            optimizer=args.optimizer,
            lr=args.lr,
            batch_size=args.batch_size,
            epochs=args.epochs,
            momentum=args.momentum,
            schedule=args.lr_schedule,
            final_lr_factor=args.final_lr_factor,
        )
    except ValidationError as err:
        raise UsageError(_flag_error(err)) from None
    return model, train


_FLAGS = {"schedule": "--lr-schedule"}


def _flag_error(err: ValidationError) -> str:
    """The one-line message of a config error, each field named by its flag (--batch-size)."""
    parts = []
    for part in describe_validation_error(err).split("; "):
        field, sep, rest = part.partition(": ")
        if sep and field.isidentifier():
            field = _FLAGS.get(field, "--" + field.replace("_", "-"))
        parts.append(f"{field}{sep}{rest}")
    return "; ".join(parts)


def _train(args: argparse.Namespace) -> int:
    from ibsweep.sweep.cli.data_command import load_or_usage_error
    from ibsweep.sweep.cli.progress_line import ProgressLine
    from ibsweep.sweep.training.single_run import train_single
    from ibsweep.sweep.training.tables import write_table

    model, train = _configs(args)
    if args.seeds <= 0 or args.seed < 0:
        raise UsageError(f"--seed must be >= 0 and --seeds positive, got {args.seed}, {args.seeds}")
    if args.mi_every <= 0:
        raise UsageError(f"--mi-every must be a positive integer, got {args.mi_every}")
    if args.measure_on not in (None, "full", "train", "test"):
        raise UsageError(f"unknown --measure-on '{args.measure_on}'; allowed: full, train, test")
    meter = _meter(model, args.estimator or [])
    data = load_or_usage_error(args.dataset, args.data_dir)
    import torch

    torch.set_num_threads(1)
    progress = None if args.quiet else ProgressLine(train.epochs)
    result = train_single(
        model,
        train,
        data,
        list(range(args.seed, args.seed + args.seeds)),
        meter,
        args.measure_on,
        args.mi_every,
        progress,
    )
    from ibsweep.sweep.cli.summary import print_run_summary

    print_run_summary(model, train, data.name, result)
    if args.out:
        path = write_table(result.table, args.out)
        print(f"table: {path} ({result.table.num_rows} rows)")
    return 0 if all(s == "finished" for s in result.status) else 1


def _meter(model: ModelConfig, values: Sequence[str]) -> LayerMeter:
    """The LayerMeter of ``--estimator`` values: none, one SPEC, or NAME=SPEC members."""
    from ibsweep.analysis.run_schema import DEFAULT_MEMBER
    from ibsweep.sweep.training.meter import LayerMeter, check_panel_names, parse_estimator_spec

    named = [v for v in values if "=" in v and ":" not in v.partition("=")[0]]
    plain = [v for v in values if v not in named]
    if named and plain:
        raise UsageError(
            f"--estimator {plain[0]}: give every member of a panel as NAME=SPEC, or one SPEC "
            "for every layer, not both"
        )
    if len(plain) > 1:
        raise UsageError(
            f"--estimator {plain[1]}: one SPEC is the estimator of every layer; name the members "
            "of a panel as NAME=SPEC, e.g. --estimator sign=binning:n_bins=2"
        )
    if plain:
        override = parse_estimator_spec(plain[0])
        return LayerMeter(model, override, labels={DEFAULT_MEMBER: f"--estimator {plain[0]}"})
    members = [v.partition("=") for v in named]
    names = [name.strip() for name, _, _ in members]
    check_panel_names(names, "--estimator")
    repeated = [name for name in names if names.count(name) > 1]
    if repeated:
        raise UsageError(f"--estimator: the name {repeated[0]!r} is given twice")
    panel = {
        name: parse_estimator_spec(spec) for name, (_, _, spec) in zip(names, members, strict=True)
    }
    labels = {name: f"--estimator {value}" for name, value in zip(names, named, strict=True)}
    return LayerMeter(model, panel=panel or None, labels=labels)


def _ui(uri: str | None, port: int, workers: int) -> int:
    from ibsweep.sweep.tracking.uri import resolve_tracking_uri

    store = resolve_tracking_uri(uri, None)
    cmd = ["mlflow", "server", "--backend-store-uri", store, "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", str(workers)]
    # MLflow's GenAI job runner (a runner and seven huey consumers) serves no runs table
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    print(f"MLflow UI on http://127.0.0.1:{port} for {store} (Ctrl-C stops it)", file=sys.stderr)
    os.execvp(cmd[0], cmd)
    return 0


def default_sweep_file() -> str:
    """The shipped quick sweep that the main job runs."""
    from ibsweep.examples import example_path

    return str(example_path("quick"))


def _default_job() -> int:
    from ibsweep.sweep.cli.run_command import run_command

    return run_command(default_sweep_file())
