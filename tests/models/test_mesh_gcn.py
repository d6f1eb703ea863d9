"""mesh_gcn: template hierarchy, Pixel2Mesh losses, interface, prior, and learning evidence."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import trimesh
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset

from tests.helpers.configs import compose_train
from tests.helpers.shared_data import REAL, needs
from zoo.data.formats.mesh import load_mesh, normalize_mesh
from zoo.metrics import chamfer_distance
from zoo.models.mesh_gcn import MeshGCN, MeshGCNShape
from zoo.models.mesh_gcn.losses import (
    LossWeights,
    edge_loss,
    laplacian_loss,
    mesh_losses,
    move_loss,
    normal_loss,
)
from zoo.models.mesh_gcn.networks import PointPooling, render_input_view
from zoo.models.mesh_gcn.template import TemplateHierarchy, subdivide, unpool
from zoo.nn.graph_conv import Adjacency
from zoo.ops.surface import sample_surface
from zoo.representation import ShapeTarget

TEAPOT = REAL / "meshes" / "teapot.obj"

TINY = dict(
    zdim=16,
    hidden=32,
    blocks=1,
    ico_subdivisions=1,
    encoder_hidden=(32, 64),
    encoder_head=(64,),
    image_channels=(8, 16),
    input_points=512,
    image_size=32,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Small graphs and matrices: one thread is fastest on the shared 2-core machine (several
    threads under load were measured 4-10x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------ template
def test_subdivision_is_the_next_icosphere_and_stays_closed() -> None:
    ico = trimesh.creation.icosphere(subdivisions=1)
    v, f, parents = subdivide(
        torch.tensor(ico.vertices, dtype=torch.float32), torch.tensor(ico.faces)
    )
    assert (len(v), len(f), len(parents)) == (162, 320, 120)
    torch.testing.assert_close(v[42:], 0.5 * (v[parents[:, 0]] + v[parents[:, 1]]))
    mesh = trimesh.Trimesh(v.numpy(), f.numpy(), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0  # outward
    # Projected to the sphere, the midpoints are trimesh's next ico-sphere.
    ico2 = torch.tensor(trimesh.creation.icosphere(subdivisions=2).vertices, dtype=torch.float32)
    d = torch.cdist(v / v.norm(dim=1, keepdim=True), ico2).min(dim=1).values
    assert float(d.max()) < 1e-3


def test_template_hierarchy_levels_and_unpool() -> None:
    t = TemplateHierarchy(subdivisions=1, n_levels=3, axes=(0.3, 0.2, 0.1))
    assert t.num_vertices == [42, 162, 642]
    for lv in range(3):
        assert int(t.faces(lv).max()) == t.num_vertices[lv] - 1
        assert len(t.edges(lv)) == 3 * len(t.faces(lv)) // 2
    torch.testing.assert_close(t.vertices.abs().amax(0), torch.tensor([0.3, 0.2, 0.1]))
    x = torch.randn(2, 42, 5)
    up = unpool(x, t.parents(0))
    assert up.shape == (2, 162, 5)
    e = t.parents(0)[7]
    torch.testing.assert_close(up[:, 42 + 7], 0.5 * (x[:, e[0]] + x[:, e[1]]))
    assert t.state_dict() == {}  # rebuilt from the arguments, not stored in checkpoints


# ------------------------------------------------------------------ losses
def _square_grid(n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """(n*n, 3) points of a unit-spaced grid in the z=0 plane and its 4-neighbour edges."""
    ij = torch.cartesian_prod(torch.arange(n), torch.arange(n))
    pts = torch.cat([ij.float(), torch.zeros(n * n, 1)], dim=1)
    idx = torch.arange(n * n).reshape(n, n)
    edges = torch.cat(
        [torch.stack([idx[:, :-1].reshape(-1), idx[:, 1:].reshape(-1)], 1),
         torch.stack([idx[:-1].reshape(-1), idx[1:].reshape(-1)], 1)]
    )  # fmt: skip
    return pts, edges


def test_regularisers_known_values() -> None:
    pts, edges = _square_grid()
    p = pts[None]  # (1, 9, 3)
    assert float(edge_loss(p, edges)) == pytest.approx(1.0)  # every edge has length 1
    assert float(edge_loss(2 * p, edges)) == pytest.approx(4.0)
    adj = Adjacency(edges, 9)
    shift = torch.tensor([0.3, -0.2, 0.5])
    assert float(laplacian_loss(p, p + shift, adj)) == pytest.approx(0.0, abs=1e-6)
    assert float(move_loss(p, p + shift)) == pytest.approx(float(shift.square().sum()))
    # Lifting the centre vertex by h changes its Laplacian by h and each of its 4 neighbours'
    # (each with 3 neighbours) by h / 3: mean over 9 vertices of the squared changes.
    h = 0.6
    lifted = p.clone()
    lifted[0, 4, 2] += h
    expected = (h**2 + 4 * (h / 3) ** 2) / 9
    assert float(laplacian_loss(p, lifted, adj)) == pytest.approx(expected, rel=1e-5)


def test_normal_loss_is_zero_for_tangent_edges_and_cosine_otherwise() -> None:
    pts, edges = _square_grid()
    p = pts[None]
    nearest = torch.arange(9)[None]
    up = torch.tensor([0.0, 0.0, 1.0]).expand(1, 9, 3)
    assert float(normal_loss(p, edges, up, nearest)) == pytest.approx(0.0, abs=1e-7)
    # Normals along x: half of the edges are along x (|cos| = 1), half along y (0).
    along_x = torch.tensor([2.0, 0.0, 0.0]).expand(1, 9, 3)  # not unit: normalised inside
    assert float(normal_loss(p, edges, along_x, nearest)) == pytest.approx(0.5)


def test_mesh_losses_weights_and_chamfer_term() -> None:
    t = TemplateHierarchy(1, 2)
    graphs = [Adjacency(t.edges(lv), t.num_vertices[lv]) for lv in range(2)]
    x0 = t.vertices[None]
    x1 = unpool(x0, t.parents(0))
    gt = 1.2 * x1  # ground truth: the template scaled by 1.2
    normals = torch.nn.functional.normalize(gt, dim=-1)
    w = LossWeights(chamfer=(0.5, 1.0), normal=0.0, edge=0.0, laplace=0.0, move=0.0)
    terms = mesh_losses([x0, x1], [x0, x1], graphs, gt, normals, w)
    cd0, cd1 = chamfer_distance(x0, gt).mean(), chamfer_distance(x1, gt).mean()
    torch.testing.assert_close(terms["loss"], 0.5 * cd0 + cd1)
    torch.testing.assert_close(terms["chamfer_final"], cd1)
    assert float(terms["move"]) == 0.0 and float(terms["laplace"]) == 0.0
    # The reference weights put 0.3 on the edge term.
    ref = mesh_losses([x0, x1], [x0, x1], graphs, gt, normals, LossWeights())
    expected = ref["chamfer"] + 0.3 * ref["edge"] + 1.6e-4 * ref["normal"]
    torch.testing.assert_close(ref["loss"], expected)
    with pytest.raises(ValueError, match="mean"):
        mesh_losses([x0], [x0], [Adjacency(t.edges(0), 42, "sym")], gt, normals, w)


# ------------------------------------------------------------------ interface
def test_untrained_model_outputs_the_template_and_a_closed_mesh() -> None:
    torch.manual_seed(0)
    model = MeshGCN(**TINY)
    out = model.decode(torch.randn(3, 16))
    assert [c.shape for c in out["coords"]] == [(3, 42, 3), (3, 162, 3), (3, 642, 3)]
    template = model.template.level_vertices(2)
    torch.testing.assert_close(out["coords"][-1], template.expand(3, -1, -1))  # zero-init offsets
    shape = model.reconstruct(ShapeTarget("sphere", points=torch.randn(700, 3)))
    assert isinstance(shape, MeshGCNShape) and shape.vertices.shape == (642, 3)
    mesh = model.to_mesh(shape)
    assert mesh.is_watertight and len(mesh.faces) == 1280
    assert model.to_points(shape, 100).shape == (100, 3)
    with pytest.raises(ValueError, match="points"):
        model.reconstruct(ShapeTarget("empty"))
    with pytest.raises(ValueError, match="encoder"):
        MeshGCN(encoder="voxels")


def test_prior_fit_recovers_a_gaussian_and_seeds_samples() -> None:
    model = MeshGCN(**{**TINY, "zdim": 4})
    g = torch.Generator().manual_seed(0)
    a = torch.tensor([[1.0, 0, 0, 0], [0.5, 0.3, 0, 0], [0, 0, 0.2, 0], [0, 0, 0.1, 0.05]])
    mean = torch.tensor([1.0, -2.0, 0.5, 0.0])
    codes = mean + torch.randn(20000, 4, generator=g) @ a.T
    model.fit_prior(codes)
    assert bool(model.prior_ready)
    torch.testing.assert_close(model.prior_mean, mean, atol=0.03, rtol=0)
    cov = model.prior_tril @ model.prior_tril.T
    torch.testing.assert_close(cov, a @ a.T, atol=0.02, rtol=0)
    s1, s2 = model.sample(3, seed=5), model.sample(3, seed=5)
    torch.testing.assert_close(torch.stack([s.z for s in s1]), torch.stack([s.z for s in s2]))
    z = model.prior_codes(4000, seed=1)  # what sample() decodes
    torch.testing.assert_close(z.mean(0), mean, atol=0.06, rtol=0)
    torch.testing.assert_close(s1[0].z, model.prior_codes(3, seed=5)[0])
    # The prior is in the state dict (so in checkpoints); the template is not.
    fresh = MeshGCN(**{**TINY, "zdim": 4})
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh.prior_tril, model.prior_tril)
    assert bool(fresh.prior_ready)


def test_image_encoder_reconstructs_from_a_render_or_a_given_image() -> None:
    torch.manual_seed(0)
    model = MeshGCN(**TINY, encoder="image")
    box = trimesh.creation.box((0.6, 0.4, 0.3))
    img = render_input_view(box, 1, size=32)
    assert img.shape == (32, 32, 3) and float(img.min()) < 0.9 and float(img.max()) == 1.0
    from_mesh = model.reconstruct(ShapeTarget("box", mesh=box))
    from_image = model.reconstruct(ShapeTarget("box", image=img))
    torch.testing.assert_close(from_mesh.z, from_image.z)
    big = torch.nn.functional.interpolate(img.permute(2, 0, 1)[None], size=(64, 64))[0]
    assert model.reconstruct(ShapeTarget("box", image=big.permute(1, 2, 0))).z.shape == (16,)
    with pytest.raises(ValueError, match="mesh"):
        model.reconstruct(ShapeTarget("box", points=torch.randn(10, 3)))


def test_image_inputs_are_rendered_from_the_datamodule_meshes_and_cached(tmp_path) -> None:
    paths = []
    for i, ext in enumerate([(0.6, 0.4, 0.3), (0.2, 0.7, 0.2)]):
        paths.append(tmp_path / f"box{i}.obj")
        trimesh.creation.box(ext).export(paths[-1])

    class _Item:
        def __init__(self, path: Path) -> None:
            self.name, self.mesh, self.normalize_mesh = path.stem, path, True

    class _DM:
        calls = 0

        def items(self, split: str) -> list[_Item]:
            _DM.calls += 1
            return [_Item(p) for p in paths] if split == "train" else []

    model = MeshGCN(**TINY, encoder="image", views=(1, 3))
    model.set_mesh_source(_DM())
    batch = {"points": torch.zeros(2, 5, 3), "idx": torch.tensor([1, 0])}
    imgs = model.batch_inputs(batch, "prior", split="train")  # first view, no randomness
    assert imgs.shape == (2, 32, 32, 3)
    expected = render_input_view(normalize_mesh(load_mesh(paths[1])), 1, size=32)
    torch.testing.assert_close(imgs[0], expected)
    calls = _DM.calls
    torch.testing.assert_close(model.batch_inputs(batch, "prior", split="train"), imgs)
    assert _DM.calls == calls  # served from the in-memory cache
    assert model.batch_inputs(batch, "train").shape == (2, 32, 32, 3)  # view 1 or 3
    model.set_mesh_source(None)
    with pytest.raises(ValueError, match="renders its inputs"):
        MeshGCN(**TINY, encoder="image").batch_inputs(batch, "train")


# ------------------------------------------------------------------ learning evidence
def _fit_one_shape(
    model: MeshGCN, mesh: trimesh.Trimesh, steps: int, lr: float
) -> tuple[float, float]:
    """Train ``model`` on one shape (2 copies per batch); surface Chamfer before and after."""
    pts, nrm = sample_surface(mesh, 1500, seed=0)
    held, _ = sample_surface(mesh, 2000, seed=1)
    target = ShapeTarget("t", points=pts, mesh=mesh)

    def surface_cd() -> float:
        return float(chamfer_distance(model.to_points(model.reconstruct(target), 2000), held))

    before = surface_cd()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    batch = {
        "points": pts.expand(2, -1, -1),
        "normals": nrm.expand(2, -1, -1),
        "idx": torch.arange(2),
    }
    for _ in range(steps):
        loss = model.loss_terms(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return before, surface_cd()


def test_deforming_the_sphere_onto_a_box_lowers_chamfer_tenfold() -> None:
    torch.manual_seed(0)
    model = MeshGCN(**TINY)
    box = trimesh.creation.box((0.8, 0.5, 0.3))
    before, after = _fit_one_shape(model, box, steps=80, lr=3e-3)
    print(f"box surface Chamfer-L2: template {before:.5f} -> fitted {after:.5f}")
    assert after < before / 10, (before, after)
    fitted = model.reconstruct(ShapeTarget("b", points=torch.randn(600, 3)))
    assert model.to_mesh(fitted).is_watertight


@pytest.mark.slow
@needs(TEAPOT)
def test_deforming_the_sphere_onto_the_teapot_lowers_chamfer_tenfold() -> None:
    teapot = normalize_mesh(load_mesh(TEAPOT))  # ShapeNet v2 normalisation
    torch.manual_seed(0)
    model = MeshGCN(**{**TINY, "hidden": 64, "blocks": 2})
    before, after = _fit_one_shape(model, teapot, steps=150, lr=3e-3)
    print(f"teapot surface Chamfer-L2: template {before:.5f} -> fitted {after:.5f}")
    assert after < before / 10, (before, after)


class _Shapes(Dataset):
    """Mesh-form items (points + normals) of boxes of random proportions, with their renders."""

    def __init__(self, n: int, seed: int, with_images: bool) -> None:
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            ext = (0.3 + 0.6 * torch.rand(3, generator=g)).tolist()
            mesh = normalize_mesh(trimesh.creation.box(ext))
            pts, nrm = sample_surface(mesh, 600, seed=i)
            item = {"points": pts, "normals": nrm, "idx": i}
            if with_images:
                item["image"] = render_input_view(mesh, 1, size=32)
            self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def test_point_pooling_reads_the_offsets_to_the_nearest_points() -> None:
    torch.manual_seed(0)
    pool = PointPooling(k=3, dim=8, hidden=16)
    verts = torch.rand(2, 5, 3)  # (B, V, 3)
    points = torch.rand(2, 40, 3)  # (B, N, 3)
    feat = pool(verts, points)
    assert feat.shape == (2, 5, 8)
    perm = torch.randperm(40)
    torch.testing.assert_close(pool(verts, points[:, perm]), feat)  # a set function
    shift = torch.tensor([0.3, -0.2, 0.5])
    torch.testing.assert_close(pool(verts + shift, points + shift), feat)  # offsets only
    # A point that is nobody's neighbour changes nothing; moving a neighbour does.
    d = torch.cdist(verts, points)  # (B, V, N)
    near = d.topk(3, dim=-1, largest=False).indices
    used = torch.zeros(2, 40, dtype=torch.bool)
    for b in range(2):
        used[b, near[b].flatten()] = True
    far, close = int((~used[0]).nonzero()[0]), int(near[0, 0, 0])
    moved = points.clone()
    moved[0, far] += 0.01 * (moved[0, far] - verts[0].mean(0)).sign()  # stays far
    torch.testing.assert_close(pool(verts, moved), feat)
    moved = points.clone()
    moved[0, close] += 0.05
    assert not torch.allclose(pool(verts, moved)[0, 0], feat[0, 0])
    # In the deformer: without points (sampling) and for dropped shapes, zeros.
    model = MeshGCN(**TINY, pool_k=4)
    z = torch.randn(2, 16)
    pts = torch.rand(2, 300, 3) - 0.5
    keep = torch.tensor([True, False])
    out = model.decode(z, pts, keep)["coords"][-1]
    torch.testing.assert_close(out[1:], model.decode(z[1:])["coords"][-1])
    assert MeshGCN(**TINY, encoder="image", pool_k=4).deformer.pool is None


@pytest.mark.parametrize("encoder", ["points", "image", "points_pooled"])
def test_lightning_fit_lowers_val_chamfer_and_fits_the_prior(encoder: str, tmp_path) -> None:
    pl.seed_everything(0, verbose=False)
    data = _Shapes(8, seed=0, with_images=encoder == "image")
    extra = {"pool_k": 4} if encoder == "points_pooled" else {}
    encoder = encoder.removesuffix("_pooled")
    model = MeshGCN(
        **TINY, **extra, encoder=encoder, optimizer=lambda p: torch.optim.Adam(p, lr=3e-3)
    )
    loader = DataLoader(data, batch_size=4)
    first = {k: torch.stack([data[i][k] for i in range(4)]) if k != "idx" else torch.arange(4)
             for k in data[0]}  # fmt: skip
    with torch.no_grad():
        cd0 = float(model.loss_terms(first, "val")["chamfer_final"])
    trainer = pl.Trainer(
        max_steps=60, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1,
        val_check_interval=30, check_val_every_n_epoch=None, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, loader, DataLoader(data, batch_size=4))
    cd1 = float(trainer.callback_metrics["val/chamfer"])
    assert cd1 < 0.4 * cd0, (cd0, cd1)
    assert bool(model.prior_ready)  # fitted on the training codes at the end of fit
    assert model.to_mesh(model.sample(1, seed=0)[0]).is_watertight


# ------------------------------------------------------------------ configs
def test_cpu_default_and_paper_preset_configs() -> None:
    cfg = compose_train(["model=mesh_gcn"])
    model = instantiate(cfg.model)
    assert isinstance(model, MeshGCN) and model.template.num_vertices == [42, 162, 642]
    assert model.deformer.pool is not None and model.deformer.pool.k == 8
    w = model.weights
    reference = (1.6e-4, 0.3, 0.5, 0.1, (1, 1, 1))  # noahcao/Pixel2Mesh options.py
    assert (w.normal, w.edge, w.laplace, w.move, tuple(w.chamfer)) == reference
    paper = compose_train(["experiment=mesh_gcn_paper"])
    m = paper.model
    assert (m.hidden, m.blocks, m.stages, m.ico_subdivisions) == (192, 6, 3, 2)
    big = instantiate(m)
    assert big.template.num_vertices == [162, 642, 2562]
    assert big.deformer.stages[1].conv_in.in_dim == 3 + m.zdim + 192
    opt = big.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    assert opt.defaults["weight_decay"] == pytest.approx(1e-6)


def test_sample_by_category_decodes_codes_of_that_categorys_cluster() -> None:
    """Codes of two categories in two clusters: a category's samples carry codes of its own
    cluster, the all-category prior is still fitted to all of them (and stays as before)."""
    model = MeshGCN(**{**TINY, "zdim": 4})
    model.configure_from_data(
        {"synsets": ["03001627", "04379243"], "categories": ["chair", "table"]}
    )
    assert model.conditional
    g = torch.Generator().manual_seed(0)
    centre = torch.tensor([[3.0, 0, 0, 0], [0, -3.0, 0, 0]])
    synsets = ["03001627", "04379243"] * 20
    codes = centre[torch.arange(40) % 2] + 0.1 * torch.randn(40, 4, generator=g)
    model.fit_prior(codes, synsets)
    all_only = MeshGCN(**{**TINY, "zdim": 4})
    all_only.fit_prior(codes)
    for name in ("prior_mean", "prior_tril"):  # labels change nothing in the all-category fit
        torch.testing.assert_close(getattr(model, name), getattr(all_only, name))
    torch.testing.assert_close(
        torch.stack([s.z for s in model.sample(3, seed=2)]), all_only.prior_codes(3, seed=2)
    )
    for k, name in enumerate(["chair", "04379243"]):
        shapes = model.sample(16, seed=1, category=name)
        z = torch.stack([s.z for s in shapes])  # (16, 4)
        d = torch.cdist(z, centre)
        assert (d.argmin(dim=1) == k).all() and d[:, k].max() < 1.0, d
        assert shapes[0].vertices.shape == (642, 3)
    with pytest.raises(ValueError, match="unknown category 'sofa'"):
        model.sample(1, category="sofa")
    # Weights from before the per-category prior load strictly, unfitted: a clear error.
    old = {k: v for k, v in model.state_dict().items() if not k.startswith("category_prior.")}
    fresh = MeshGCN(**{**TINY, "zdim": 4})
    fresh.configure_from_data(
        {"synsets": ["03001627", "04379243"], "categories": ["chair", "table"]}
    )
    fresh.load_state_dict(old)
    torch.testing.assert_close(fresh.prior_codes(3, seed=2), model.prior_codes(3, seed=2))
    with pytest.raises(ValueError, match="'chair' has no fitted prior"):
        fresh.sample(1, category="chair")


def test_encode_batches_collects_each_codes_synset() -> None:
    model = MeshGCN(**TINY)
    g = torch.Generator().manual_seed(0)
    batches = [
        {"points": torch.rand(2, 300, 3, generator=g), "synset": ["a", "b"]},
        {"points": torch.rand(1, 300, 3, generator=g), "synset": ["c"]},
    ]
    labels: list[str] = []
    codes = model.encode_batches(batches, labels)
    assert codes.shape == (3, 16) and labels == ["a", "b", "c"]
    torch.testing.assert_close(codes[2:], model.encode_batches(batches[1:]))  # in order
    unlabelled: list[str] = []
    model.encode_batches([{"points": batches[0]["points"]}], unlabelled)
    assert unlabelled == []  # batches without labels: none collected


def test_flow_prior_samples_each_category_and_the_mixture() -> None:
    model = MeshGCN(
        **{**TINY, "zdim": 4},
        latent_prior="flow",
        prior_flow={"hidden": 16, "depth": 2, "fit_steps": 150, "lr": 1e-2},
    )
    model.configure_from_data(
        {"synsets": ["03001627", "04379243"], "categories": ["chair", "table"]}
    )
    g = torch.Generator().manual_seed(0)
    centre = torch.tensor([[3.0, 0, 0, 0], [0, -3.0, 0, 0]])
    codes = centre[torch.arange(40) % 2] + 0.1 * torch.randn(40, 4, generator=g)
    model.fit_prior(codes, ["03001627", "04379243"] * 20)
    for k, name in enumerate(["chair", "table"]):
        z = torch.stack([s.z for s in model.sample(16, seed=1, category=name)])  # (16, 4)
        d = torch.cdist(z, centre)
        assert (d.argmin(dim=1) == k).all() and d[:, k].median() < 0.5, d
    z = torch.stack([s.z for s in model.sample(32, seed=2)])  # the mixture of both flows
    nearest = torch.cdist(z, centre).argmin(dim=1)
    assert 6 < int((nearest == 0).sum()) < 26, nearest
