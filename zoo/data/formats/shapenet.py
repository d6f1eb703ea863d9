"""ShapeNetCore folder layouts, synset ids and deterministic splits.

Layouts (Chang et al., "ShapeNet: An Information-Rich 3D Model Repository", 2015):

- v1: ``<root>/<synset>/<model_id>/model.obj``
- v2: ``<root>/<synset>/<model_id>/models/model_normalized.obj`` (bounding box centred at the
  origin, diagonal 1)

A category is given by its WordNet synset id (``"03001627"``) or its name (``"chair"``); the
table below is the ShapeNetCore v2 taxonomy (55 synsets), as used by PointFlow
(``synsetid_to_cate``, after Achlioptas et al., latent_3d_points).

ShapeNet's official splits are distributed separately; when the root holds a ``split.json``
(``{"<synset>": {"train": [ids], "val": [ids], "test": [ids]}}``, which our generator writes) it
is used, otherwise :func:`split_ids` makes a deterministic seeded 70/10/20 split.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from zoo.data.io import DataError, atomic_write_json, read_json

SYNSET_TO_NAME: dict[str, str] = {
    "02691156": "airplane", "02747177": "trash_bin", "02773838": "bag", "02801938": "basket",
    "02808440": "bathtub", "02818832": "bed", "02828884": "bench", "02843684": "birdhouse",
    "02871439": "bookshelf", "02876657": "bottle", "02880940": "bowl", "02924116": "bus",
    "02933112": "cabinet", "02942699": "camera", "02946921": "can", "02954340": "cap",
    "02958343": "car", "02992529": "cellphone", "03001627": "chair", "03046257": "clock",
    "03085013": "keyboard", "03207941": "dishwasher", "03211117": "display",
    "03261776": "earphone", "03325088": "faucet", "03337140": "file_cabinet",
    "03467517": "guitar", "03513137": "helmet", "03593526": "jar", "03624134": "knife",
    "03636649": "lamp", "03642806": "laptop", "03691459": "loudspeaker", "03710193": "mailbox",
    "03759954": "microphone", "03761084": "microwave", "03790512": "motorbike", "03797390": "mug",
    "03928116": "piano", "03938244": "pillow", "03948459": "pistol", "03991062": "pot",
    "04004475": "printer", "04074963": "remote", "04090263": "rifle", "04099429": "rocket",
    "04225987": "skateboard", "04256520": "sofa", "04330267": "stove", "04379243": "table",
    "04401088": "telephone", "04460130": "tower", "04468005": "train", "04530566": "watercraft",
    "04554684": "washer",
}  # fmt: skip
NAME_TO_SYNSET: dict[str, str] = {v: k for k, v in SYNSET_TO_NAME.items()}
# Other names in use for the same synsets (PointFlow / ShapeNet taxonomy labels).
NAME_TO_SYNSET.update(
    {"monitor": "03211117", "speaker": "03691459", "vessel": "04530566", "boat": "04530566",
     "motorcycle": "03790512", "tin_can": "02946921", "file": "03337140",
     "remote_control": "04074963", "sofa_couch": "04256520"}
)  # fmt: skip

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)
SPLIT_FILE = "split.json"


def synset_of(category: str) -> str:
    """The synset id of a category given by name or id (an unknown 8-digit id passes through).

    Raises:
        ValueError: an unknown name.
    """
    c = str(category).strip()
    if c.isdigit() and len(c) == 8:
        return c
    key = c.lower().replace(" ", "_")
    if key in NAME_TO_SYNSET:
        return NAME_TO_SYNSET[key]
    raise ValueError(
        f"unknown ShapeNet category {category!r}: give a synset id like '03001627' or one of "
        f"{sorted(SYNSET_TO_NAME.values())}"
    )


def name_of(synset: str) -> str:
    """The category name of a synset id (the id itself when not in the table)."""
    return SYNSET_TO_NAME.get(synset, synset)


@dataclass(frozen=True)
class ShapeNetModel:
    """One model of a ShapeNetCore tree."""

    synset: str
    model_id: str
    path: Path  # the mesh file
    version: int  # 1 or 2

    @property
    def name(self) -> str:
        """``"<synset>/<model_id>"``, unique across categories."""
        return f"{self.synset}/{self.model_id}"


def model_file(model_dir: str | os.PathLike[str]) -> tuple[Path, int] | None:
    """The mesh of one model folder and the layout version, or None when there is none."""
    d = Path(model_dir)
    v2 = d / "models" / "model_normalized.obj"
    if v2.is_file():
        return v2, 2
    v1 = d / "model.obj"
    if v1.is_file():
        return v1, 1
    return None


def v2_model_path(root: str | os.PathLike[str], synset: str, model_id: str) -> Path:
    """``<root>/<synset>/<model_id>/models/model_normalized.obj``."""
    return Path(root) / synset / model_id / "models" / "model_normalized.obj"


def check_root(root: str | os.PathLike[str]) -> Path:
    """``root`` as a Path; a missing folder raises :class:`DataError` (field ``root``)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "root", "dataset folder does not exist")
    return root


def list_categories(root: str | os.PathLike[str]) -> list[str]:
    """Synset ids present under a ShapeNetCore root (folders of 8 digits), sorted."""
    root = check_root(root)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def list_models(root: str | os.PathLike[str], category: str) -> list[ShapeNetModel]:
    """All models of one category (v1 or v2 layout), sorted by id.

    Raises:
        DataError: missing root, missing category folder, or a category without any model.
    """
    root = check_root(root)
    synset = synset_of(category)
    cat_dir = root / synset
    label = f"{name_of(synset)!r} ({synset})"
    if not cat_dir.is_dir():
        raise DataError(cat_dir, "category", f"no folder for category {label} under the root")
    models = []
    for d in sorted(cat_dir.iterdir()):
        found = model_file(d) if d.is_dir() else None
        if found is not None:
            models.append(ShapeNetModel(synset, d.name, found[0], found[1]))
    if not models:
        raise DataError(
            cat_dir,
            "category",
            f"no models for category {label} (expected <id>/models/model_normalized.obj "
            "or <id>/model.obj)",
        )
    return models


def list_shapes(
    root: str | os.PathLike[str], categories: Iterable[str] | None = None
) -> dict[str, list[ShapeNetModel]]:
    """Models per synset for the given categories (names or ids; None: every category)."""
    synsets = list_categories(root) if categories is None else [synset_of(c) for c in categories]
    if not synsets:
        raise DataError(root, "root", "no category folders (8-digit synset ids) found")
    return {s: list_models(root, s) for s in synsets}


def split_ids(
    ids: Sequence[str], seed: int = 0, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> dict[str, list[str]]:
    """Deterministic train/val/test split: a seeded shuffle of the sorted ids, cut by fractions.

    Sizes: ``n_val = floor(f_val * n + 1/2)``, ``n_test = floor(f_test * n + 1/2)`` but at least
    one test shape when ``n >= 2`` and ``f_test > 0``, the rest train (at least one). The result
    depends only on the set of ids, the seed and the fractions, never on their order.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    order = sorted(set(ids))
    random.Random(f"zoo-split-{seed}").shuffle(order)
    n = len(order)
    n_val = int(fractions[1] * n + 0.5)
    n_test = max(int(fractions[2] * n + 0.5), int(n >= 2 and fractions[2] > 0))
    while n > 0 and n_val + n_test >= n:  # keep one training shape
        if n_test >= n_val and n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    n_train = n - n_val - n_test
    train, val = order[:n_train], order[n_train : n_train + n_val]
    test = order[n_train + n_val :]
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


def limit_split(split: dict[str, list[str]], max_shapes: int | None) -> dict[str, list[str]]:
    """At most ``max_shapes`` shapes in total, taken from each split in proportion to its size.

    Every shape keeps the split it has in the full dataset, so caches stay valid when the limit
    changes; splits that are non-empty keep at least one shape when the limit allows.
    """
    if max_shapes is None:
        return {k: list(v) for k, v in split.items()}
    if max_shapes < 1:
        raise ValueError(f"max_shapes_per_category must be >= 1, got {max_shapes}")
    total = sum(len(v) for v in split.values())
    if total <= max_shapes:
        return {k: list(v) for k, v in split.items()}
    quota = {k: 0 for k in split}
    budget = max_shapes
    for k in ("train", "test", "val"):  # one shape per non-empty split first, train first
        if split.get(k) and budget > 0:
            quota[k], budget = 1, budget - 1
    spare = {k: len(v) - quota[k] for k, v in split.items()}
    exact = {k: budget * spare[k] / max(sum(spare.values()), 1) for k in split}
    for k in split:
        quota[k] += int(exact[k])
    leftover = max_shapes - sum(quota.values())
    for k in sorted(split, key=lambda k: exact[k] - int(exact[k]), reverse=True):  # largest rest
        if leftover > 0 and quota[k] < len(split[k]):
            quota[k], leftover = quota[k] + 1, leftover - 1
    return {k: v[: quota[k]] for k, v in split.items()}


def read_split_file(path: str | os.PathLike[str]) -> dict[str, dict[str, list[str]]]:
    """Read ``{"<synset>": {"train": [...], "val": [...], "test": [...]}}`` (validated)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(path, "file", f"expected a JSON object, got {type(data).__name__}")
    for synset, parts in data.items():
        if not isinstance(parts, dict) or not set(parts) <= set(SPLITS):
            raise DataError(path, synset, f"expected an object with keys {SPLITS}, got {parts!r}")
        for k, v in parts.items():
            if not isinstance(v, list) or not all(isinstance(i, str) for i in v):
                raise DataError(path, f"{synset}.{k}", "expected a list of model id strings")
    return {s: {k: list(p.get(k, [])) for k in SPLITS} for s, p in data.items()}


def write_split_file(path: str | os.PathLike[str], split: dict[str, dict[str, list[str]]]) -> None:
    """Write a split in the format of :func:`read_split_file`, atomically."""
    atomic_write_json(path, split)
