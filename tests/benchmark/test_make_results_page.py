"""``benchmarks/make_results_page.py``: docs/results.md is the script's output on the repository's
result files (so a result edited without regenerating the page fails here), and the page shows
what a result file records: its conditions, its rows, every number."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location(
        "make_results_page", REPO / "benchmarks" / "make_results_page.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_results_page_is_up_to_date_with_the_result_files():
    script = _script()
    page = script.render_page(REPO / "benchmarks" / "results")
    current = (REPO / "docs" / "results.md").read_text()
    assert current == page, "docs/results.md is stale: run python benchmarks/make_results_page.py"
    for path in sorted((REPO / "benchmarks" / "results").glob("*.json")):
        assert f"### `{path.name}`" in page, path.name


def test_readme_results_table_is_up_to_date_and_names_every_file_it_reads():
    script = _script()
    readme = (REPO / "README.md").read_text()
    assert script.update_readme(readme) == readme, (
        "README's results table is stale: run python benchmarks/make_results_page.py"
    )
    rows = script.summary_rows()
    assert len(rows) >= 8
    for model, _, _, result, name in rows:
        assert (REPO / "benchmarks" / "results" / name).is_file(), name
        assert f"| {model} |" in readme and result in readme


def test_page_shows_conditions_rows_and_every_number(tmp_path):
    result = {
        "note": "alone on the CPU",
        "machine": {"cpu_count": 2, "torch": "2.13.0+cpu"},
        "results": {
            "nerf": {"steps": 6117, "scales": {"d0": {"psnr": 22.0738}}},
            "ngp": {"steps": 8877, "scales": {"d0": {"psnr": 25.1412}}, "curve": [{"s": 1.5}]},
        },
        "rows": [{"task": "chamfer", "median_s": 0.12345}],
        "wide": {f"m{i}": float(i) for i in range(20)},
    }
    (tmp_path / "nerf_toy.json").write_text(json.dumps(result))
    page = _script().render_page(tmp_path)

    assert "## Radiance fields: NeRF and Instant-NGP" in page  # the family of nerf_*.json
    assert "- note: alone on the CPU" in page and "- machine.cpu_count: 2" in page
    assert "| row | steps | scales.d0.psnr |" in page  # one row per model, nested keys dotted
    assert "| nerf | 6117 | 22.07 |" in page and "| ngp | 8877 | 25.14 |" in page
    assert "**results / ngp / curve**" in page and "| 1.5 |" in page  # a nested list: a table
    assert "| chamfer | 0.1235 |" in page
    assert "| m19 | 19 |" in page  # 20 columns, one row: transposed to one row per field


def test_check_fails_on_a_stale_page(tmp_path):
    script = _script()
    results, page = tmp_path / "results", tmp_path / "results.md"
    results.mkdir()
    args = ["--results", str(results), "--out", str(page), "--readme", str(tmp_path / "no.md")]
    (results / "viewer.json").write_text(json.dumps({"fps": [{"model": "ngp", "fps": 4.1}]}))
    assert script.main(args) == 0
    assert script.main([*args, "--check"]) == 0
    (results / "viewer.json").write_text(json.dumps({"fps": [{"model": "ngp", "fps": 4.2}]}))
    assert script.main([*args, "--check"]) == 1
