"""Fetching a sweep's series: the tidy table, and the last value of a repeated point."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param, Run, RunData, RunInfo
from mlflow.tracking import MlflowClient

from ibsweep.analysis.fetch import EPOCH_METRICS, LAYER_METRICS, VALUE_COLUMNS, fetch_long, tidy


def run(run_id: str, **params: str) -> Run:
    info = RunInfo(run_id, "0", "user", "FINISHED", 0, 1, "active")
    return Run(info, RunData(params=[Param(k, v) for k, v in params.items()]))


def pivot_reference(long: pd.DataFrame, runs: list[Run]) -> pd.DataFrame:
    """The tidy table as pandas' pivot_table makes it (how fetch.tidy once worked)."""
    parts = long["key"].astype(str).str.split("/layer", n=1, expand=True)
    long = long.assign(metric=parts[0], layer=pd.to_numeric(parts.get(1), errors="coerce"))
    per_layer = long[long["metric"].isin(list(LAYER_METRICS))]
    per_epoch = long[long["metric"].isin(list(EPOCH_METRICS))]
    layer_df = per_layer.pivot_table(
        index=["run_id", "layer", "step"], columns="metric", values="value", aggfunc="last"
    ).rename(columns=LAYER_METRICS)
    epoch_df = per_epoch.pivot_table(
        index=["run_id", "step"], columns="metric", values="value", aggfunc="last"
    ).rename(columns=EPOCH_METRICS)
    df = layer_df.reset_index().merge(epoch_df.reset_index(), on=["run_id", "step"], how="left")
    df = df.rename(columns={"step": "epoch"})
    for col in VALUE_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    df["layer"] = df["layer"].astype("int64")
    df["epoch"] = df["epoch"].astype("int64")
    info = pd.DataFrame(
        [
            {
                "run_id": r.info.run_id,
                **{k: v for k, v in r.data.params.items() if k != "seed"},
                "seed": int(r.data.params.get("seed", -1)),
                "n_layers": int(r.data.params["model.n_layers"]),
                "ceiling": np.log2(int(r.data.params["mi.n_samples"])),
            }
            for r in runs
        ]
    )
    df = df.merge(info, on="run_id", how="inner")
    first = ["run_id", "seed", "layer", "epoch", *VALUE_COLUMNS, "n_layers", "ceiling"]
    rest = sorted(c for c in df.columns if c not in first)
    return df[first + rest].sort_values(["run_id", "layer", "epoch"]).reset_index(drop=True)


def test_tidy_matches_a_pivot_of_the_long_table():
    rng = np.random.default_rng(0)
    runs = [
        run("b", **{"model.n_layers": "2", "mi.n_samples": "4096", "seed": "1", "lr": "0.1"}),
        run("a", **{"model.n_layers": "3", "mi.n_samples": "1024", "seed": "0", "opt": "sgd"}),
    ]
    rows = []
    for r, n_layers in (("a", 3), ("b", 2)):
        for step in (0, 1, 2, 5, 10):
            rows += [(r, key, step) for key in EPOCH_METRICS if step != 2]  # epoch 2: no loss
            for k in range(1, n_layers + 1):
                rows += [
                    (r, f"{m}/layer{k}", step) for m in LAYER_METRICS if step or m != "grad_snr"
                ]
        rows += [(r, "phase/layer1/t50", 0), (r, "other", 3), ("unknown-run", "loss", 1)]
    long = pd.DataFrame(rows, columns=["run_id", "key", "step"])
    long["value"] = rng.normal(size=len(long))
    long.loc[long.index[::7], "value"] = np.nan  # NaN points, some of whole rows
    long = long.sample(frac=1.0, random_state=1, ignore_index=True)  # any order
    expected = pivot_reference(long, runs)
    for frame in (long, long.astype({"run_id": "category", "key": "category"})):
        table = tidy(frame, runs)
        assert list(table.columns) == list(expected.columns)
        assert len(table) == len(expected)
        for col in expected.columns:
            pd.testing.assert_series_equal(table[col].astype(object), expected[col].astype(object))


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("fetch")
    params = {"model.n_layers": "1", "mi.n_samples": "16", "seed": "0"}
    run_id = client.create_run(exp).info.run_id
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    points = [Metric("I_XT/layer1", float(s), 1000, s) for s in range(4)]
    points += [Metric("I_TY/layer1", 0.5, 1000, 2), Metric("I_TY/layer1", 0.7, 2000, 2)]
    points += [Metric("I_TY/layer1", 0.9, 1000, 3), Metric("loss", float("nan"), 1000, 3)]
    client.log_batch(run_id, metrics=points)
    client.set_terminated(run_id)
    return uri, client.get_run(run_id)


def test_sqlite_fetch_keeps_the_last_logged_value_of_a_repeated_point(sqlite_store):
    uri, stored = sqlite_store
    long = fetch_long(uri, MlflowClient(uri), [stored])
    assert isinstance(long["run_id"].dtype, pd.CategoricalDtype)
    by_key = {key: g.set_index("step")["value"] for key, g in long.groupby("key", observed=True)}
    assert by_key["I_XT/layer1"].to_dict() == {0: 0.0, 1: 1.0, 2: 2.0, 3: 3.0}
    assert by_key["I_TY/layer1"].to_dict() == {2: 0.7, 3: 0.9}  # 0.7 was logged later
    assert np.isnan(by_key["loss"][3])
    table = tidy(long, [stored])
    assert table["epoch"].tolist() == [0, 1, 2, 3]
    assert table["i_ty"].tolist()[2:] == [0.7, 0.9]
