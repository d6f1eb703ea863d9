"""Write docs/results.md from the result files in benchmarks/results/*.json.

Every number on the page is read from a JSON file, never typed: one section per file, grouped
by the benchmark that writes it, with the file's conditions (machine, settings, notes: its
top-level scalars and its ``machine`` / ``settings`` / ``protocol`` / ``data`` / ``model``
blocks) as a list and its measurements as tables. The layout is inferred from the JSON's
shape, so a new result file needs no code here:

- a list of objects is a table, one row per object;
- an object whose values are all objects is a table, one row per key;
- any other object is one row; nested objects become dotted columns (``scales.d0.psnr``);
- a list of objects, or a row-per-key object with more than 12 values, nested inside a row
  becomes its own table;
- a table with more than 12 columns and more columns than rows is transposed.

    python benchmarks/make_results_page.py            # rewrite docs/results.md and the table
    python benchmarks/make_results_page.py --check    # exit 1 if either is stale

It also writes the README's one results table (between the ``SUMMARY_START`` / ``SUMMARY_END``
markers): a row per model, each read from the result file it links to (``summary_rows``).

``tests/benchmark/test_make_results_page.py`` runs ``--check``'s comparison, so a result file
edited without regenerating the page fails the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
PAGE = REPO / "docs" / "results.md"
README = REPO / "README.md"
SUMMARY_START = "<!-- results table: benchmarks/make_results_page.py -->"
SUMMARY_END = "<!-- end of results table -->"

# Blocks of a result file that describe how it was measured rather than what was measured.
CONDITION_KEYS = {"machine", "settings", "protocol", "data", "model", "conditions", "config"}
# Transpose a table with more columns than this (and than rows): fields become rows.
MAX_COLUMNS = 12

# (section title, file-name prefixes, benchmarks/<script>.py that writes them); first match wins.
FAMILIES: list[tuple[str, tuple[str, ...], str]] = [
    ("Radiance fields: NeRF and Instant-NGP", ("nerf",), "bench_nerf"),
    ("Mip-NeRF, single and multiscale", ("mipnerf",), "bench_mipnerf"),
    ("3D Gaussian splatting", ("gaussians",), "bench_gaussians"),
    ("Shape models: quality against training time", ("shape_curves",), "bench_shape_curves"),
    ("Pretrained weights: training curves", ("pretrained_curves",), "bench_shape_curves"),
    (
        "Pretrained weights: spread over CPU kernels",
        ("pretrained_spread",),
        "bench_pretrained_spread",
    ),
    ("Generation one category at a time", ("generation", "real_generation"), "bench_generation"),
    ("Unseen real meshes", ("real_meshes",), "bench_real_meshes"),
    ("DeepSDF reconstruction", ("deepsdf",), "bench_deepsdf"),
    ("Mesh GCN reconstruction", ("mesh_gcn",), "bench_mesh_gcn"),
    ("PointFlow", ("pointflow",), "bench_pointflow"),
    ("Metrics: speed and agreement", ("metrics",), "bench_metrics"),
    ("Marching cubes and ray casting", ("marching_cubes",), "bench_marching_cubes"),
    ("Structure from motion (zoo.process)", ("process",), "bench_process"),
    ("Viewer", ("viewer",), "bench_viewer"),
]


@dataclass
class Table:
    """A titled table: ``rows`` are ``(label, {column: cell})``."""

    title: str
    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _is_scalar_list(value: Any) -> bool:
    return isinstance(value, list) and all(_is_scalar(v) for v in value)


def _is_row_map(value: Any) -> bool:
    """An object whose values are all objects: one table row per key."""
    return (
        isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())
    )


def _is_object_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _flatten(obj: dict[str, Any], prefix: str, title: str, tables: list[Table]) -> dict[str, Any]:
    """The scalar leaves of ``obj`` under dotted keys; nested tables are appended to ``tables``
    (titled ``title / key``) instead of being flattened into columns."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if _is_scalar(value) or _is_scalar_list(value):
            out[name] = value
        elif _is_object_list(value) or (_is_row_map(value) and _leaf_count(value) > MAX_COLUMNS):
            _collect(value, f"{title} / {key}", tables)
        elif isinstance(value, dict):
            out.update(_flatten(value, f"{name}.", f"{title} / {key}", tables))
        else:  # a list holding lists or a mix: shown as JSON
            out[name] = json.dumps(value)
    return out


def _leaf_count(obj: Any) -> int:
    if isinstance(obj, dict):
        return sum(_leaf_count(v) for v in obj.values())
    return 1


def _collect(obj: Any, title: str, tables: list[Table]) -> None:
    """Append the table(s) that ``obj`` (a list or object found under ``title``) holds."""
    table = Table(title)
    tables.append(table)  # before its nested tables, so the page reads outside-in
    if _is_object_list(obj):
        for i, item in enumerate(obj):
            table.rows.append((str(i), _flatten(item, "", f"{title}[{i}]", tables)))
    elif _is_row_map(obj):
        for key, item in obj.items():
            if _is_row_map(item) and _leaf_count(item) > MAX_COLUMNS:  # a table of its own
                _collect(item, f"{title} / {key}", tables)
            else:
                table.rows.append((str(key), _flatten(item, "", f"{title} / {key}", tables)))
    elif isinstance(obj, dict):
        table.rows.append(("", _flatten(obj, "", title, tables)))
    else:
        table.rows.append(("", {"value": obj}))
    if not any(cells for _, cells in table.rows):
        tables.remove(table)


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_format(v) for v in value) + "]"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _render_table(table: Table) -> list[str]:
    columns: list[str] = []
    for _, cells in table.rows:
        columns += [c for c in cells if c not in columns]
    labels = [label for label, _ in table.rows]
    if len(columns) > MAX_COLUMNS and len(columns) > len(table.rows):  # fields as rows
        head = ["field", *(label or "value" for label in labels)]
        body = [[c, *(_format(cells.get(c, "")) for _, cells in table.rows)] for c in columns]
    else:
        show_label = any(labels)
        head = (["row"] if show_label else []) + columns
        body = [
            ([label] if show_label else [])
            + [_format(cells[c]) if c in cells else "" for c in columns]
            for label, cells in table.rows
        ]
    lines = [f"**{table.title}**", "", "| " + " | ".join(head) + " |"]
    lines.append("|" + "---|" * len(head))
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return [*lines, ""]


def render_file(name: str, data: Any) -> list[str]:
    """The markdown section of one result file (``name``: its file name)."""
    lines = [f"### `{name}`", ""]
    conditions: dict[str, Any] = {}
    tables: list[Table] = []
    items = data.items() if isinstance(data, dict) else [("results", data)]
    for key, value in items:
        if _is_scalar(value) or _is_scalar_list(value):
            conditions[key] = value
        elif key in CONDITION_KEYS and isinstance(value, dict):
            conditions.update(_flatten(value, f"{key}.", key, tables))
        else:
            _collect(value, key, tables)
    if conditions:
        lines += [f"- {k}: {_format(v)}" for k, v in conditions.items()] + [""]
    for table in tables:
        lines += _render_table(table)
    return lines


def _family(stem: str) -> int:
    for i, (_, prefixes, _) in enumerate(FAMILIES):
        if stem.startswith(prefixes):
            return i
    return len(FAMILIES)


def _anchor(title: str) -> str:
    """The GitHub anchor of a markdown heading."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def render_page(results_dir: Path = RESULTS) -> str:
    """The whole of docs/results.md for the result files in ``results_dir``."""
    files = sorted(results_dir.glob("*.json"), key=lambda p: (_family(p.stem), p.name))
    lines = [
        "# Benchmark results",
        "",
        "<!-- Generated by benchmarks/make_results_page.py from benchmarks/results/*.json;",
        "     do not edit: rerun the script. -->",
        "",
        "Every table below is read from a result file in `benchmarks/results/`: the script that",
        "wrote it, the machine and the settings it recorded, then its measurements (floats to 4",
        "significant digits, `-` for a missing value). What the numbers say is discussed in the",
        "pages that cite them ([README](../README.md), [radiance fields](radiance_fields.md),",
        "[shape models](shape_models.md), [captures](captures.md), [generation](generation.md)).",
        "",
    ]
    families = sorted({_family(p.stem) for p in files})
    titles = [FAMILIES[f][0] if f < len(FAMILIES) else "Other results" for f in families]
    lines += [f"- [{t}](#{_anchor(t)})" for t in titles] + [""]
    current = -1
    for path in files:
        family = _family(path.stem)
        if family != current:
            current = family
            if family < len(FAMILIES):
                title, _, script = FAMILIES[family]
                lines += [f"## {title}", "", f"Written by `benchmarks/{script}.py`.", ""]
            else:
                lines += ["## Other results", ""]
        lines += render_file(path.name, json.loads(path.read_text()))
    return "\n".join(lines).rstrip("\n") + "\n"


def _recon(metrics: dict[str, float]) -> str:
    """Reconstruction on held-out shapes (30,000 points a side): F-score and Chamfer-L2."""
    return (
        f"F@0.01 {metrics['recon/fscore@0.01']:.3f}, "
        f"CD-L2 {metrics['recon/chamfer_l2'] * 1e3:.3f} x1e-3"
    )


def summary_rows(results_dir: Path = RESULTS) -> list[list[str]]:
    """The README's results table: per model, (model, data, training, result, result file);
    every number is read here from the file the row names."""

    def load(name: str) -> Any:
        return json.loads((results_dir / name).read_text())

    shapes = "synthshapes, 16 held-out shapes"
    rows = []
    curves = load("shape_curves.json")["runs"]["voxel_gan"]
    snap = next(s for s in curves["snapshots"] if s["step"] == curves["default_max_steps"])
    rows.append(
        [
            "voxel_gan",
            shapes,
            f"{snap['step']} steps (CPU default, shipped)",
            _recon(snap["metrics"]),
            "shape_curves.json",
        ]
    )
    for model, name in [
        ("pointflow", "pretrained_curves_pointflow.json"),
        ("mesh_gcn", "pretrained_curves_mesh_gcn_resumed.json"),
        ("deepsdf", "pretrained_curves_deepsdf.json"),
    ]:
        data = load(name)
        run = data["runs"][model] if "runs" in data else data
        steps = run["snapshots"][-1]["step"]
        rows.append([model, shapes, f"{steps} steps (shipped)", _recon(run["final_metrics"]), name])
    sdf = load("generation_synthshapes_chair_deepsdf.json")
    metrics, base = sdf["models"]["deepsdf"]["metrics"], sdf["baselines"]
    rows.append(
        [
            "deepsdf (generation)",
            f"synthshapes chair, {metrics['gen/references']:.0f} held-out references",
            f"{sdf['models']['deepsdf']['trained_steps']} steps on 350 chairs (shipped)",
            f"1-NNA-CD {metrics['gen/1nna_cd']:.3f} ± {metrics['gen/1nna_cd_se']:.3f} "
            f"(data row {base['gen_data/1nna_cd']:.3f}; 0.5 best)",
            "generation_synthshapes_chair_deepsdf.json",
        ]
    )
    gen = load("generation_synthshapes_chair.json")
    metrics = gen["models"]["point_diffusion"]["metrics"]
    rows.append(
        [
            "point_diffusion",
            f"synthshapes chair, {metrics['gen/references']:.0f} held-out references",
            "the command in [generation](docs/generation.md)",
            f"MMD-CD {metrics['gen/mmd_cd'] * 1e3:.3f} x1e-3, "
            f"1-NNA-CD {metrics['gen/1nna_cd']:.3f}",
            "generation_synthshapes_chair.json",
        ]
    )
    for name, models in [
        ("mipnerf_single_scale.json", ["nerf", "mipnerf"]),
        ("gaussians.json", ["ngp", "gaussians"]),
    ]:
        data = load(name)
        for model in models:
            end = data["results"][model]["curve"][-1]  # the budget's last point
            rows.append(
                [
                    model,
                    f"tiny lego, {data['split']}",
                    f"{end['train_s'] / 60:.0f} min on 2 CPU cores, {end['step']} steps",
                    f"PSNR {end['psnr']:.2f} dB",
                    name,
                ]
            )
    return rows


def render_summary(results_dir: Path = RESULTS) -> str:
    """The README's results table, in markdown, between its markers."""
    lines = [
        SUMMARY_START,
        "| model | data | training | held-out result | file |",
        "|---|---|---|---|---|",
    ]
    for model, data, training, result, name in summary_rows(results_dir):
        link = f"[{name}](benchmarks/results/{name})"
        lines.append(f"| {model} | {data} | {training} | {result} | {link} |")
    return "\n".join([*lines, SUMMARY_END])


def update_readme(readme: str, results_dir: Path = RESULTS) -> str:
    """``readme`` with the text between the summary markers replaced by the current table."""
    start, end = readme.find(SUMMARY_START), readme.find(SUMMARY_END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {SUMMARY_START} ... {SUMMARY_END} block")
    return readme[:start] + render_summary(results_dir) + readme[end + len(SUMMARY_END) :]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of result JSON files")
    p.add_argument("--out", type=Path, default=PAGE, help="the page to write")
    p.add_argument("--readme", type=Path, default=README, help="README with the summary table")
    p.add_argument("--check", action="store_true", help="compare instead of writing; 1 if stale")
    args = p.parse_args(argv)
    wanted = {args.out: render_page(args.results)}
    if args.readme.exists() and SUMMARY_START in args.readme.read_text():
        wanted[args.readme] = update_readme(args.readme.read_text(), args.results)
    stale = [path for path, text in wanted.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"error: {path} is stale: run python benchmarks/make_results_page.py")
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
