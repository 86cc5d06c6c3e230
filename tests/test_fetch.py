"""Fetching a sweep's series: the tidy table, and the last value of a repeated point."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param, Run, RunData, RunInfo
from mlflow.tracking import MlflowClient

from ibsweep.analysis import run_schema as rs
from ibsweep.analysis.fetch import EPOCH_METRICS, MI_METRICS, VALUE_COLUMNS, fetch_long, tidy


def run(run_id: str, **params: str) -> Run:
    info = RunInfo(run_id, "0", "user", "FINISHED", 0, 1, "active")
    return Run(info, RunData(params=[Param(k, v) for k, v in params.items()]))


def pivot_reference(long: pd.DataFrame, runs: list[Run]) -> pd.DataFrame:
    """The tidy table as pandas' pivot_table and merges make it (how fetch.tidy once worked)."""
    members = {r.info.run_id: rs.panel_members(r.data.params) for r in runs}
    parsed = [rs.parse_layer_key(k) for k in long["key"].astype(str)]
    long = long.assign(
        metric=[p.metric if p else k for p, k in zip(parsed, long["key"].astype(str), strict=True)],
        layer=[p.layer if p else np.nan for p in parsed],
        estimator=[p.member if p else None for p in parsed],
    )
    long = long[long["run_id"].astype(str).isin(members)]
    pairs = zip(long["run_id"].astype(str), long["estimator"], strict=True)
    listed = np.array([e in members[r] for r, e in pairs], dtype=bool)
    per_member = long[long["metric"].isin(list(MI_METRICS)) & listed]
    mi_df = per_member.pivot_table(
        index=["run_id", "estimator", "layer", "step"], columns="metric", values="value",
        aggfunc="last", dropna=False, observed=True,
    ).rename(columns=MI_METRICS).reset_index()  # fmt: skip
    mi_df = mi_df.dropna(subset=[c for c in MI_METRICS.values() if c in mi_df], how="all")
    grad = long[long["metric"] == "grad_snr"]
    grad_df = grad.pivot_table(
        index=["run_id", "layer", "step"], values="value", aggfunc="last", dropna=False,
        observed=True,
    ).rename(columns={"value": "grad_snr"}).reset_index()  # fmt: skip
    grad_rows = grad_df.dropna(subset=["grad_snr"])
    grad_rows = grad_rows.assign(estimator=[members[str(r)] for r in grad_rows["run_id"]])
    cells = pd.concat(
        [mi_df[["run_id", "estimator", "layer", "step"]],
         grad_rows.explode("estimator")[["run_id", "estimator", "layer", "step"]]],
    ).astype({"run_id": str}).drop_duplicates()  # fmt: skip
    df = cells.merge(mi_df.astype({"run_id": str}), how="left")
    df = df.merge(grad_df.astype({"run_id": str}), how="left", on=["run_id", "layer", "step"])
    per_epoch = long[long["metric"].isin(list(EPOCH_METRICS))]
    epoch_df = per_epoch.pivot_table(
        index=["run_id", "step"], columns="metric", values="value", aggfunc="last",
        observed=True,
    ).rename(columns=EPOCH_METRICS).reset_index().astype({"run_id": str})  # fmt: skip
    df = df.merge(epoch_df, on=["run_id", "step"], how="left")
    df = df.rename(columns={"step": "epoch"})
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
    bits = [
        float(r.data.params.get(rs.max_bits_param(int(k), e), np.nan))
        for r, e, k in zip(df["run_id"], df["estimator"], df["layer"], strict=True)
        for r in [next(x for x in runs if x.info.run_id == r)]
    ]
    df["layer_ceiling"] = np.minimum(df["ceiling"], bits)
    for col in VALUE_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    df["layer"] = df["layer"].astype("int64")
    df["epoch"] = df["epoch"].astype("int64")
    first = ["run_id", "seed", "estimator", "layer", "epoch", *VALUE_COLUMNS, "n_layers"]
    first.append("ceiling")
    rest = sorted(c for c in df.columns if c not in first)
    order = ["run_id", "estimator", "layer", "epoch"]
    return df[first + rest].sort_values(order).reset_index(drop=True)


def _points(run_id: str, n_layers: int, members: list[str | None], steps) -> list[tuple]:
    rows = []
    for step in steps:
        rows += [(run_id, key, step) for key in EPOCH_METRICS if step != 2]  # epoch 2: no loss
        for k in range(1, n_layers + 1):
            for member in members:
                rows += [(run_id, rs.layer_key(m, k, member), step) for m in MI_METRICS]
            if step:
                rows.append((run_id, rs.layer_key("grad_snr", k), step))
    return rows


def _assert_equal(long: pd.DataFrame, runs: list[Run]) -> pd.DataFrame:
    expected = pivot_reference(long, runs)
    for frame in (long, long.astype({"run_id": "category", "key": "category"})):
        table = tidy(frame, runs)
        assert list(table.columns) == list(expected.columns)
        assert len(table) == len(expected)
        for col in expected.columns:
            pd.testing.assert_series_equal(
                table[col].astype(object), expected[col].astype(object), check_names=False
            )
    return table


def test_tidy_matches_a_pivot_of_the_long_table():
    rng = np.random.default_rng(0)
    runs = [
        run("b", **{"model.n_layers": "2", "mi.n_samples": "4096", "seed": "1", "lr": "0.1"}),
        run("a", **{"model.n_layers": "3", "mi.n_samples": "1024", "seed": "0", "opt": "sgd",
                    "mi.layer2.max_bits": "5", "mi.layer3.max_bits": "inf"}),
    ]  # fmt: skip
    rows = _points("a", 3, [None], (0, 1, 2, 5, 10)) + _points("b", 2, [None], (0, 1, 2, 5, 10))
    for r in ("a", "b"):
        rows += [(r, "phase/layer1/t50", 0), (r, "other", 3), ("unknown-run", "loss", 1)]
        rows += [(r, "grad_snr/layer1", 11)]  # a gradient value without MI: a row still
    long = pd.DataFrame(rows, columns=["run_id", "key", "step"])
    long["value"] = rng.normal(size=len(long))
    long.loc[long.index[::7], "value"] = np.nan  # NaN points, some of whole rows
    long = long.sample(frac=1.0, random_state=1, ignore_index=True)  # any order
    table = _assert_equal(long, runs)
    assert set(table["estimator"].astype(str)) == {"default"}
    a = table[table["run_id"] == "a"]
    assert (a.loc[a["layer"] == 2, "layer_ceiling"] == 5.0).all()
    assert (a.loc[a["layer"] == 3, "layer_ceiling"] == 10.0).all()  # log2 1024
    assert a.loc[a["layer"] == 1, "layer_ceiling"].isna().all()  # no param


def test_tidy_has_a_row_per_panel_member_with_shared_gradients_and_accuracy():
    rng = np.random.default_rng(2)
    panel = {"mi.estimators": "sign,bin30", "mi.estimators.sign.layer1.max_bits": "3"}
    runs = [
        run("p", **{"model.n_layers": "2", "mi.n_samples": "256", "seed": "0", **panel}),
        run("q", **{"model.n_layers": "2", "mi.n_samples": "256", "seed": "1"}),
    ]
    rows = _points("p", 2, ["sign", "bin30"], (0, 1, 2, 3))
    rows += _points("p", 2, ["other"], (1,))  # a member the run's panel does not list
    rows += _points("q", 2, [None], (0, 1, 3))
    long = pd.DataFrame(rows, columns=["run_id", "key", "step"])
    long["value"] = rng.normal(size=len(long))
    table = _assert_equal(long, runs)
    p = table[table["run_id"] == "p"]
    assert sorted(set(p["estimator"].astype(str))) == ["bin30", "sign"]
    assert len(p) == 2 * 2 * 4  # members x layers x epochs
    by = p.set_index(["estimator", "layer", "epoch"])
    for col in ("grad_snr", "loss", "train_acc", "test_acc"):
        pd.testing.assert_series_equal(by.loc["sign", col], by.loc["bin30", col], check_names=False)
    assert not np.allclose(by.loc["sign", "i_xt"], by.loc["bin30", "i_xt"])
    assert (by.loc[("sign", 1), "layer_ceiling"] == 3.0).all()
    assert set(table.loc[table["run_id"] == "q", "estimator"].astype(str)) == {"default"}


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
