"""``python -m zoo.benchmark`` end to end on a tiny budget: every output file, consistent rows."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "out"
    args = [
        sys.executable,
        "-m",
        "zoo.benchmark",
        f"hydra.searchpath=[file://{REPO}/tests/conf]",
        "models=[tiny_points,nerf]",
        f"data.root={tmp}/synth",
        "data.categories=[chair,mug]",
        "data.shapes_per_category=6",
        "data.image_size=24",
        "data.batch_size=4",
        "trainer.max_steps=30",
        "trainer.val_check_interval=30",
        "eval.max_shapes=3",
        "eval.n_points=512",
        "eval.recon_points=512",
        "eval.n_boot=50",
        "eval.mesh_resolution=24",
        "eval.gen_references_per_category=5",  # the benchmark tops the split up (100 by default)
        "eval.generation_emd_references=6",
        f"hydra.run.dir={out}",
    ]
    env = dict(os.environ, ZOO_TRUSTED_MODULES="tests.helpers.", PYTHONWARNINGS="ignore")
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc


def _models(results: list[dict]) -> list[dict]:
    """The model rows (not the generation baselines)."""
    return [r for r in results if r["kind"] != "baseline"]


def test_writes_every_output(bench):
    out, _ = bench
    for name in ("results.json", "results.csv", "results.md", "report.html"):
        assert (out / name).is_file(), name
    assert list((out / "plots").glob("bar_*.png"))
    assert list((out / "plots").glob("quality_vs_time_*.png"))
    html = (out / "report.html").read_text()
    results = _models(json.loads((out / "results.json").read_text())["results"])
    thumbs = [r["thumbnail"] for r in results] + ["thumbs/ground_truth.png"]
    assert len(set(thumbs)) == 3
    for thumb in thumbs:
        assert thumb in html and (out / thumb).is_file(), thumb
    assert "squared Euclidean" in html  # conventions are stated


def test_rows_have_every_metric_group(bench):
    out, _ = bench
    rows = _models(json.loads((out / "results.json").read_text())["results"])
    results = {r["model"]: r for r in rows}
    assert set(results) == {"tiny_points", "nerf"}
    tiny, nerf = results["tiny_points"]["metrics"], results["nerf"]["metrics"]
    for key in (
        "recon/chamfer_l2",
        "recon/fscore@0.01",
        "gen/1nna_cd",
        "gen/mmd_emd",
        "gen/1nna_emd",
        "gen/1nna_emd_se",
        "gen/jsd",
        "gen/jsd_se",
        "gen/fpd",
        "gen/p_is",
        "show/psnr",
        "show/mask_iou",
        "cost/params_m",
        "cost/weights_mb",
        "cost/train_min",
        "cost/sample_s",
        "cost/peak_mb",
    ):
        assert key in tiny and math.isfinite(tiny[key]), key
    for key in ("view/psnr", "show/psnr", "show/ssim", "cost/train_min"):
        assert key in nerf and math.isfinite(nerf[key]), key
    # Same scene, same held-out cameras: the benchmark's own render agrees with the evaluator.
    assert abs(nerf["show/psnr"] - nerf["view/psnr"]) < 1e-3
    # Both rows are scored on the same showcase shape.
    assert results["tiny_points"]["showcase"] == results["nerf"]["showcase"]
    split = json.loads((out.parent / "synth" / "ShapeNetCore.v2" / "split.json").read_text())
    n_test = sum(len(s["test"]) for s in split.values())
    assert results["tiny_points"]["recon_shapes"] == min(3, n_test)
    assert results["nerf"]["recon_shapes"] == 1
    # generation against the split topped up to 5 shapes a category; EMD on 6 of those 10
    assert tiny["gen/references"] == 10 and tiny["gen/references_emd"] == 6


def test_table_and_csv_match_json(bench):
    out, _ = bench
    results = json.loads((out / "results.json").read_text())["results"]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["model"] for r in rows] == [r["model"] for r in results]
    for row, res in zip(rows, results, strict=True):
        if res["kind"] != "baseline":
            assert float(row["show/psnr"]) == pytest.approx(res["metrics"]["show/psnr"])
    md = (out / "results.md").read_text()
    psnr = results[0]["metrics"]["show/psnr"]
    assert f"{psnr:.2f}" in md and md.count("\n|") >= 3


def test_collect_merges_result_files(bench, tmp_path):
    out, _ = bench
    env = dict(os.environ, ZOO_TRUSTED_MODULES="tests.helpers.")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "zoo.benchmark",
            f"collect={out}/models",
            f"hydra.run.dir={tmp_path}/c",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    merged = json.loads((out / "models" / "results.json").read_text())["results"]
    assert sorted(r["model"] for r in merged) == ["nerf", "tiny_points"]


def test_thumbnails_open_offline_3d_views(bench):
    """Each model's showcase output and the ground truth are kept as files, and its thumbnail
    links to an offline 3D page of them (viser's static export, the scene embedded)."""
    out, _ = bench
    results = json.loads((out / "results.json").read_text())["results"]
    html = (out / "report.html").read_text()
    for i, r in enumerate(results):
        if r["kind"] == "baseline":  # no model, no showcase
            continue
        files = r["showcase_files"]
        assert "ground_truth" in files, files
        if math.isfinite(r["metrics"]["show/chamfer_l2"]):  # the model had a surface
            assert "prediction" in files or "points" in files, files
        assert all((out / rel).is_file() for rel in files.values()), files
        page = next((out / "views").glob(f"{i:02d}_*.html"))
        assert f'href="views/{page.name}"' in html
        assert "__VISER_EMBED_DATA__" in page.read_text()


def test_generation_baselines_stand_beside_the_generators(bench):
    """The perfect-generator and memorising rows, scored once against the models' references,
    in the JSON, the Markdown table and the report, with the references' categories."""
    out, proc = bench
    results = {r["model"]: r for r in json.loads((out / "results.json").read_text())["results"]}
    data, train = results["data (perfect generator)"], results["train copy (memorising)"]
    tiny = results["tiny_points"]
    assert data["kind"] == train["kind"] == "baseline" and data["source"] == "independent draw"
    assert data["metrics"]["gen/references"] == tiny["metrics"]["gen/references"] == 10
    assert train["metrics"]["gen/references"] == 10 and 2 <= train["metrics"]["gen/samples"] <= 10
    for row in (data, train):
        for key in ("gen/mmd_cd", "gen/1nna_cd", "gen/1nna_cd_se", "gen/1nna_emd", "gen/jsd"):
            assert math.isfinite(row["metrics"][key]), (row["model"], key)
        assert row["gen_categories"] == tiny["gen_categories"] == ["chair", "mug"]
    assert proc.stdout.count("generation baselines:") == 1  # once, not per model
    assert (out / "baselines" / "data" / "result.json").is_file()
    md, html = (out / "results.md").read_text(), (out / "report.html").read_text()
    for text in (md, html):
        assert "data (perfect generator)" in text and "train copy (memorising)" in text
        assert "gen categories: chair, mug" in text
    assert "Generation baselines" in html  # its convention is stated
