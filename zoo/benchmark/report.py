"""The benchmark's outputs: results.json, results.csv, a Markdown table, plots and an HTML page.

Every number comes from the per-model ``result.json`` files written by the benchmark runs; this
module only formats them, and states every metric's convention next to the table.
"""

from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path
from typing import Any

from zoo.viewer import ViewerUnavailable
from zoo.viewer.static import write_comparison_pages

# (key in a result's "metrics", column title, scale, format); None scale = as is.
COLUMNS: list[tuple[str, str, float, str]] = [
    ("recon/chamfer_l2", "CD-L2 x1e3 ↓", 1e3, "{:.3f}"),
    ("ceil/chamfer_l2", "CD-L2 ceiling x1e3", 1e3, "{:.3f}"),
    ("recon/fscore@0.01", "F@0.01 ↑", 1.0, "{:.3f}"),
    ("ceil/fscore@0.01", "F ceiling", 1.0, "{:.3f}"),
    ("frac/fscore@0.01", "F / ceiling", 1.0, "{:.2f}"),
    ("recon/normal_consistency", "NC ↑", 1.0, "{:.3f}"),
    ("recon/iou", "IoU ↑", 1.0, "{:.3f}"),
    ("gen/references", "gen refs", 1.0, "{:.0f}"),
    ("gen/mmd_cd", "MMD-CD x1e3 ↓", 1e3, "{:.3f}"),
    ("gen/cov_cd", "COV-CD ↑", 1.0, "{:.3f}"),
    ("gen/1nna_cd", "1-NNA-CD (0.5 best)", 1.0, "{:.3f}"),
    ("gen/mmd_emd", "MMD-EMD x1e2 ↓", 1e2, "{:.3f}"),
    ("gen/cov_emd", "COV-EMD ↑", 1.0, "{:.3f}"),
    ("gen/1nna_emd", "1-NNA-EMD (0.5 best)", 1.0, "{:.3f}"),
    ("gen/jsd", "JSD x1e2 ↓", 1e2, "{:.3f}"),
    ("gen/fpd", "FPD* ↓", 1.0, "{:.3f}"),
    ("gen/p_is", "P-IS* ↑", 1.0, "{:.3f}"),
    ("show/chamfer_l2", "show CD-L2 x1e3 ↓", 1e3, "{:.3f}"),
    ("show/psnr", "PSNR dB ↑", 1.0, "{:.2f}"),
    ("show/ssim", "SSIM ↑", 1.0, "{:.3f}"),
    ("show/mask_iou", "mask IoU ↑", 1.0, "{:.3f}"),
    ("cost/params_m", "params M", 1.0, "{:.3f}"),
    ("cost/weights_mb", "weights MB", 1.0, "{:.2f}"),
    ("cost/train_min", "train min", 1.0, "{:.1f}"),
    ("cost/sample_s", "sample s", 1.0, "{:.3f}"),
    ("cost/peak_mb", "peak MB", 1.0, "{:.0f}"),
]

CONVENTIONS = [
    "Shapes are in ShapeNet v2 normalisation (bounding-box centre at the origin, bounding-box "
    "diagonal 1); no rescaling before any metric.",
    "CD-L2: Chamfer distance with squared Euclidean distances, the sum of the two directional "
    "means (PointFlow / PyTorch3D convention), on 30,000 points a side for reconstructions "
    "(DeepSDF's protocol; eval.recon_points) and 2048-point clouds for generation (PointFlow's; "
    "eval.n_points); shown x1e3.",
    "F@0.01: F-score at a Euclidean distance tau = 0.01 (strict <), 30,000 points each side.",
    "a ± b: the mean and its bootstrap standard error (1000 resamples of the shapes; for "
    "MMD / COV / 1-NNA a two-sample bootstrap of samples and references, every copy of a "
    "cloud left out of its own 1-NN search). Differences within about two standard errors "
    "are not evidence.",
    "Ceiling: the held-out ground truth pushed through the model's own representation and "
    "scored the same way (voxel_gan: the true voxels at its grid, meshed as it meshes; "
    "deepsdf: the true SDF marching-cubed at its grid; mesh_gcn: its template, vertex count "
    "and genus fitted to the true surface with its own loss; pointflow: an independent "
    "sample of the true surface, i.e. the metric's sampling noise). 'F / ceiling' is the "
    "score as a fraction of it.",
    "NC: normal consistency, mean |cos| between each point's normal and its nearest "
    "neighbour's normal, both directions averaged.",
    "IoU: voxel IoU at the data's voxel resolution (32^3), for models trained on voxels.",
    "Reconstruction columns (CD-L2, F, NC, IoU): shape models reconstruct each held-out shape "
    "(n = 'recon shapes') from their own input form; radiance models (per-scene) are scored "
    "on the mesh marching-cubed from their density field (n = 1, the showcase shape).",
    "MMD / COV / 1-NNA (PointFlow's definitions, Chamfer as the distance, no normalisation "
    "inside): as many samples as held-out reference shapes ('gen refs': the test split, "
    "topped up to eval.gen_references_per_category shapes a category where the data can draw "
    "more held-out shapes: synthshapes draws them from a seed stream of their own, never "
    "trained on); 1-NNA ideal is 0.5, lower is better down to 0.5.",
    "Generation baselines (rows of kind 'baseline', no model involved, scored once for the "
    "data by the same code against the same references): 'data (perfect generator)' scores "
    "an independent draw of held-out shapes of the same distribution as if they were a "
    "model's samples, as many a category as references (synthshapes: a seed stream of its "
    "own, never a dataset shape nor a reference; data that cannot draw more: the references "
    "split into two seeded halves within each category, one scored against the other, "
    "source 'split halves', fewer references): what a perfect generator scores, the floor "
    "of MMD and 1-NNA and the top of COV at this reference count. 'train copy (memorising)' "
    "scores the training shapes (the train split, as many a category as references or all "
    "of them where it has fewer: 'gen/samples' in results.json): what memorising the "
    "training set scores. With fewer samples than references 1-NNA's chance level is not "
    "0.5 but (S(S-1) + R(R-1)) / ((S+R)(S+R-1)) ('gen/1nna_chance'), and COV is at most S/R. "
    "'gen categories' under the table: the categories the references come from.",
    "EMD columns: PointFlow's approximate EMD (the approxmatch of Fan et al. 2017 as in "
    "PointFlow's evaluation code: 9 annealing levels, Euclidean cost, divided by N; not the "
    "exact EMD), with PointFlow's argument order; MMD-EMD shown x1e2 as in PointFlow's tables; "
    "on eval.generation_emd_references of the references (evenly spread over the set) and as "
    "many samples where set (gen/references_emd in results.json).",
    "JSD: PointFlow's Jensen-Shannon divergence (bits) between the pooled point counts of the "
    "samples and of the references on a 28^3 grid clipped to the unit-diameter sphere; x1e2.",
    "FPD* / P-IS*: TreeGAN's Frechet PointNet Distance (all stages of the classifier) and "
    "Point-E's P-IS, computed with the zoo's own PointNet classifier (pointnet-synthshapes, "
    "trained on the synthshapes categories): NOT comparable with the papers' numbers, which "
    "used other networks and data; compare rows of this table only.",
    "show *: the showcase shape (the first held-out shape of the showcase category), the same "
    "for every model, rendered by the same held-out cameras. Radiance models are compared "
    "with the colour ground-truth renders; the others (no colour) are ray-cast with grey "
    "shading and compared with the ground-truth mesh ray-cast the same way. PSNR: images in "
    "[0, 1] on a white background, mean of per-view PSNR. SSIM: 11x11 Gaussian window, sigma "
    "1.5. mask IoU: rendered opacity > 0.5 vs the ground-truth silhouette.",
    "Cost: parameters; the size of the model's float32 safetensors weights file (a pretrained "
    "entry may ship float16, half of it); training wall time (the whole zoo.train run: data "
    "preparation, training and its final evaluation); time to sample one shape and mesh "
    "it (marching "
    "cubes at the evaluation resolution where the model is implicit); peak resident memory "
    "of the training process (CPU) or peak CUDA memory on a GPU.",
]


def _cell(value: Any, scale: float, fmt: str, se: Any = None) -> str:
    """``value`` scaled and formatted, with ``± se`` where a standard error is known."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = fmt.format(value * scale)
    if isinstance(se, (int, float)) and math.isfinite(se):
        text += " ± " + fmt.format(se * scale)
    return text


def flat(result: dict[str, Any]) -> dict[str, Any]:
    """One row: model, kind, source and every metric key."""
    row = {
        "model": result["model"],
        "kind": result.get("kind"),
        "source": result.get("source"),
        "recon_shapes": result.get("recon_shapes"),
        "device": result.get("device"),
    }
    row.update(result.get("metrics", {}))
    return row


def generation_note(results: list[dict[str, Any]]) -> str:
    """One line naming the categories of each distinct generation reference set ("" if none)."""
    sets = dict.fromkeys(tuple(r["gen_categories"]) for r in results if r.get("gen_categories"))
    return "; ".join("gen categories: " + ", ".join(c) for c in sets)


def markdown_table(results: list[dict[str, Any]]) -> str:
    cols = [c for c in COLUMNS if any(c[0] in r.get("metrics", {}) for r in results)]
    head = ["model", "kind", "recon shapes"] + [c[1] for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        m = r.get("metrics", {})
        cells = [r["model"], str(r.get("kind", "")), str(r.get("recon_shapes", ""))]
        cells += [_cell(m.get(key), scale, fmt, m.get(f"{key}_se")) for key, _, scale, fmt in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(results: list[dict[str, Any]], path: Path) -> None:
    rows = [flat(r) for r in results]
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for row in rows:
            w.writerow({k: row.get(k, "") for k in keys})


def plots(results: list[dict[str, Any]], folder: Path) -> list[Path]:
    """A bar chart per metric, and quality against training time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    names = [r["model"] for r in results]
    for key, title, scale, _ in COLUMNS:
        vals = [r.get("metrics", {}).get(key) for r in results]
        if all(v is None or (isinstance(v, float) and math.isnan(v)) for v in vals):
            continue
        ys = [float("nan") if v is None else v * scale for v in vals]
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
        ax.bar(names, ys, color="#4a7ab5")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=20)
        fig.tight_layout()
        path = folder / f"bar_{key.replace('/', '_').replace('@', '_at_')}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    for key, title in (("show/psnr", "showcase PSNR (dB)"), ("recon/chamfer_l2", "CD-L2")):
        pts = [
            (r["model"], r["metrics"].get("cost/train_min"), r["metrics"].get(key)) for r in results
        ]
        pts = [p for p in pts if p[1] is not None and p[2] is not None and not math.isnan(p[2])]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for name, x, y in pts:
            ax.scatter([x], [y])
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4))
        ax.set_xlabel("training wall time (min)")
        ax.set_ylabel(title)
        if key == "recon/chamfer_l2":
            ax.set_yscale("log")
        ax.set_title(f"{title} vs training time")
        fig.tight_layout()
        path = folder / f"quality_vs_time_{key.split('/')[-1]}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def write_html(
    results: list[dict[str, Any]],
    out_dir: Path,
    plot_files: list[Path],
    command: str,
    views: dict[int, str] | None = None,
    views_note: str = "",
) -> Path:
    """A self-contained page (images referenced relatively) with the table, thumbnails of every
    model on the showcase shape, plots and conventions. ``views`` (row index -> offline 3D page,
    see :func:`zoo.viewer.static.write_comparison_pages`) turns those thumbnails into links."""
    views = views or {}
    table = _html_table(results)
    thumbs = []
    gt = out_dir / "thumbs" / "ground_truth.png"
    if gt.is_file():
        thumbs.append(_figure("thumbs/ground_truth.png", "ground truth (colour)"))
    gt_grey = out_dir / "thumbs" / "ground_truth_grey.png"
    if gt_grey.is_file():
        thumbs.append(_figure("thumbs/ground_truth_grey.png", "ground truth (grey)"))
    for i, r in enumerate(results):
        t = r.get("thumbnail")
        if t and (out_dir / t).is_file():
            thumbs.append(_figure(t, f"{r['model']} ({r.get('kind', '')})", views.get(i)))
    show = results[0].get("showcase", {}) if results else {}
    plots_html = "".join(
        f'<img src="{html.escape(p.relative_to(out_dir).as_posix())}" alt="{p.stem}">'
        for p in plot_files
    )
    conv = "".join(f"<li>{html.escape(c)}</li>" for c in CONVENTIONS)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zoo benchmark</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 7px; text-align: right; }}
th {{ background: #eef2f7; }} td:first-child, td:nth-child(2) {{ text-align: left; }}
.thumbs {{ display: flex; flex-wrap: wrap; gap: 12px; }}
figure {{ margin: 0; text-align: center; font-size: 13px; }}
figure img {{ width: 160px; height: 160px; image-rendering: auto; border: 1px solid #ddd; }}
.plots img {{ max-width: 440px; margin: 4px; }}
code {{ background: #f4f4f4; padding: 1px 4px; }}
</style></head><body>
<h1>zoo benchmark</h1>
<p>Command: <code>{html.escape(command)}</code></p>
<h2>Results</h2>
{table}
<p>{html.escape(generation_note(results))}</p>
<h2>The same held-out shape, every model</h2>
<p>Showcase shape: {html.escape(str(show.get("category", "")))}
<code>{html.escape(str(show.get("model_id", "")))}</code> (test split), first held-out view.
{"Click a model to turn its output and the ground truth in 3D (offline)." if views else ""}
{html.escape(views_note)}</p>
<div class="thumbs">{"".join(thumbs)}</div>
<h2>Plots</h2><div class="plots">{plots_html}</div>
<h2>Conventions</h2><ul>{conv}</ul>
</body></html>
"""
    path = out_dir / "report.html"
    path.write_text(page)
    return path


def _figure(src: str, caption: str, link: str | None = None) -> str:
    img = f'<img src="{html.escape(src)}" alt="{html.escape(caption)}">'
    if link:
        img = f'<a class="view3d" href="{html.escape(link)}" title="open in 3D">{img}</a>'
        caption += " · 3D"
    return f"<figure>{img}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _html_table(results: list[dict[str, Any]]) -> str:
    cols = [c for c in COLUMNS if any(c[0] in r.get("metrics", {}) for r in results)]
    head = "".join(f"<th>{html.escape(t)}</th>" for t in ["model", "kind", "recon shapes"])
    head += "".join(f"<th>{html.escape(c[1])}</th>" for c in cols)
    rows = []
    for r in results:
        m = r.get("metrics", {})
        cells = [r["model"], str(r.get("kind", "")), str(r.get("recon_shapes", ""))]
        cells += [_cell(m.get(key), scale, fmt, m.get(f"{key}_se")) for key, _, scale, fmt in cols]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def write_report(results: list[dict[str, Any]], out_dir: Path, command: str) -> dict[str, Path]:
    """Every output file of the benchmark for ``results`` (one dict per model)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": out_dir / "results.json", "csv": out_dir / "results.csv"}
    files["json"].write_text(
        json.dumps({"command": command, "conventions": CONVENTIONS, "results": results}, indent=2)
    )
    write_csv(results, files["csv"])
    md = markdown_table(results)
    note = generation_note(results)
    files["md"] = out_dir / "results.md"
    files["md"].write_text(f"Command: `{command}`\n\n{md}\n" + (f"\n{note}\n" if note else ""))
    plot_files = plots(results, out_dir / "plots")
    views, note = _views(results, out_dir)
    files["html"] = write_html(results, out_dir, plot_files, command, views, note)
    return files


def _views(results: list[dict[str, Any]], out_dir: Path) -> tuple[dict[int, str], str]:
    """The offline 3D pages of the rows that carry showcase geometry (needs the ``view``
    extra; without it the report keeps its static thumbnails and says why)."""
    if not any(r.get("showcase_files") for r in results):
        return {}, ""
    try:
        return write_comparison_pages(results, out_dir), ""
    except ViewerUnavailable as e:
        return {}, f"(No 3D views: {e}.)"


__all__ = ["COLUMNS", "CONVENTIONS", "generation_note", "markdown_table", "write_report"]
