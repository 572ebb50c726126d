"""Figures of a synthetic many-run aggregate (docs/outputs.md) stay within the image limits
of issue 13 — at most MAX_HEIGHT_PX tall and MAX_PANELS panels — and account for every config."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from synthetic import synthetic_aggregate

from gradsweep import plotting
from gradsweep.plotting.data import MAX_HEIGHT_PX, MAX_PANELS
from gradsweep.table.results import results_markdown


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> dict[str, Path]:
    # the first real grid: depth 3 x width 2 x 4 activations x 3 inits x 2 seeds
    return synthetic_aggregate(tmp_path_factory.mktemp("grid144"), steps_per_epoch=5)


def _check(path: Path) -> int:
    with Image.open(path) as img:
        assert img.height <= MAX_HEIGHT_PX, (path.name, img.size)
        panels = int(img.info["Panels"])
    assert 1 <= panels <= MAX_PANELS, (path.name, panels)
    return panels


def test_many_run_figures_respect_limits_and_show_every_config(grid, tmp_path: Path) -> None:
    runs = pd.read_parquet(grid["runs"])
    assert len(runs) == 144 and runs["config_id"].nunique() == 72
    probe = plotting.read_traces(grid["traces"], source="probe")
    pages = plotting.page_suffixes(runs)
    assert len(pages) > 1 and len(set(pages)) == len(pages)
    drawn = []
    for page in pages:
        out = tmp_path / f"gradients{page}.png"
        shown = plotting.plot_gradient_norms(probe, runs, out, "grid", page)
        assert _check(out) == len(shown)  # one panel per config of the page
        drawn.append(shown)
    drawn = pd.concat(drawn)
    # every config exactly once over the pages, with both seeds
    assert sorted(drawn["config_id"]) == sorted(runs["config_id"].unique())
    assert drawn["drawn"].all() and (drawn["n_seeds"] == 2).all()

    kernels = plotting.read_traces(
        grid["traces"], source="probe", param="kernel",
        columns=(*plotting.data.TRACE_COLUMNS, "relative_update"),
    )  # fmt: skip
    updates = plotting.plot_update_sizes(kernels, runs, tmp_path / "updates.png", "grid", pages[0])
    assert _check(tmp_path / "updates.png") == len(updates)  # the gradients page's panels
    first = plotting.plot_gradient_norms(probe, runs, tmp_path / "g0.png", "grid", pages[0])
    assert updates["config_id"].tolist() == first["config_id"].tolist() and updates["drawn"].all()

    # the learning curves on the same page: one panel per config (the loss axes are no panels)
    metrics = pd.read_parquet(grid["metrics"])
    curves = plotting.plot_learning_curves(metrics, runs, tmp_path / "curves.png", "grid", pages[0])
    assert _check(tmp_path / "curves.png") == len(first)
    assert curves["config_id"].unique().tolist() == first["config_id"].tolist()

    steps = plotting.read_traces(grid["traces"], source="step")
    shown = plotting.plot_step_traces(steps, runs, tmp_path / "steps.png", "grid", pages[0])
    assert _check(tmp_path / "steps.png") == len(shown)

    diag = plotting.plot_diagnostics(
        plotting.read_traces(grid["traces"], source="probe", columns=plotting.DIAGNOSTIC_COLUMNS),
        runs,
        tmp_path / "diagnostics.png",
        "grid",
    )
    assert _check(tmp_path / "diagnostics.png") == 7 * diag["config_id"].nunique()

    cells = plotting.plot_ratio_heatmap(runs, tmp_path / "heatmap.png")
    assert _check(tmp_path / "heatmap.png") == 2  # init and end side by side
    at_init = cells[cells["when"] == "at initialisation"]
    assert len(at_init) == 72 and at_init["n"].sum() == 144  # every config, every seed

    acc = plotting.plot_accuracy_vs_depth(runs, tmp_path / "accuracy.png")
    _check(tmp_path / "accuracy.png")
    assert set(acc["config_id"]) == set(runs["config_id"])

    lines = plotting.plot_activation_init_grid(probe, runs, tmp_path / "act_init.png")
    assert _check(tmp_path / "act_init.png") == 12  # 4 activations x 3 inits
    assert lines.groupby("when")["n_runs"].sum().min() > 0

    md = results_markdown(runs)
    assert md.count("\n| ") - md.count("\n| hidden layers") == 72  # one row per config


def test_pages_split_by_outer_axes_and_parts() -> None:
    rows = [
        {"run_id": f"e/{i}-{s}", "config_id": f"c{i}", "experiment": "e", "depth": 2,
         "widths": "8-8", "activation": "relu", "init": "he_normal", "learning_rate": lr,
         "seed": s}
        for i, lr in enumerate([0.001 * (k + 1) for k in range(30)])
        for s in (0, 1)
    ]  # fmt: skip
    runs = pd.DataFrame(rows)
    pages = plotting.pages(runs)
    # one varying axis with 30 values: no outer axis to split by, so numbered parts
    assert [p.suffix for p in pages] == ["-part1", "-part2"]
    assert sum(len(p.configs) for p in pages) == 30
    assert all(len(p.configs) <= MAX_PANELS for p in pages)
