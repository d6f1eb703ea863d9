"""Command-line overrides that make every registered model train in seconds, for tests that run
the real CLI on each model (DDP, sampling an untrained checkpoint).

One entry per registered model: a test parametrised over ``zoo.models.registry`` fails for a
newly registered model until its tiny run is added here, so every model is covered from the day
it is registered. Data: the reliability tests' synthshapes root (chair and mug, 5 shapes each).
"""

from __future__ import annotations

from pathlib import Path

# Shape models: small networks, 16^3 voxels, 2 held-out shapes scored on 512 points, no ceilings.
_SHAPES = [
    "data.categories=[chair,mug]",
    "data.shapes_per_category=5",
    "data.voxel_resolution=16",
    "data.sdf_samples=4096",
    "data.n_points=512",
    "eval.max_shapes=2",
    "eval.n_points=512",
    "eval.recon_points=512",
    "eval.n_boot=50",
    "eval.ceilings=false",
    "eval.mesh_resolution=24",
    "eval.save_images=false",
]
# Radiance models: the chair's renders at 24 px, one validation view.
_VIEWS = [
    "data.image_size=24",
    "data.val_views=1",
    "eval.recon_points=512",
    "eval.n_boot=50",
    "eval.mesh_resolution=24",
    "eval.save_images=false",
]

TINY: dict[str, list[str]] = {
    "pointnet": [
        *_SHAPES,
        "data.batch_size=4",
        "model.hidden=[8,16]",
        "model.head=[16]",
        "model.train_points=64",
        "model.input_points=256",
        "trainer.max_steps=10",
        "trainer.val_check_interval=5",
    ],
    "voxel_gan": [
        *_SHAPES,
        "data.batch_size=4",
        "model.g_channels=4",
        "model.d_channels=4",
        "model.recon_steps=10",
        "model.recon_restarts=2",
        "trainer.max_steps=20",
        "trainer.val_check_interval=5",
    ],
    "pointflow": [
        *_SHAPES,
        "data.batch_size=4",
        "model.zdim=8",
        "model.encoder_hidden=[16,32]",
        "model.encoder_head=[32]",
        "model.point_dims=[16]",
        "model.latent_dims=[16]",
        "model.solver=euler",
        "model.steps=4",
        "model.train_points=64",
        "model.input_points=256",
        "model.mesh_points=1024",
        "model.stats_max_batches=2",
        "trainer.max_steps=10",
        "trainer.val_check_interval=5",
    ],
    "point_diffusion": [
        *_SHAPES,
        "data.batch_size=4",
        "model.zdim=8",
        "model.encoder_hidden=[16,32]",
        "model.encoder_head=[32]",
        "model.denoiser_dims=[16,16]",
        "model.flow_depth=2",
        "model.flow_hidden=16",
        "model.num_steps=10",
        "model.train_points=64",
        "model.input_points=256",
        "model.mesh_points=1024",
        "model.stats_max_batches=2",
        "trainer.max_steps=10",
        "trainer.val_check_interval=5",
    ],
    "mesh_gcn": [
        *_SHAPES,
        "data.batch_size=4",
        "model.zdim=16",
        "model.hidden=16",
        "model.blocks=1",
        "model.stages=2",
        "model.encoder_hidden=[16,32]",
        "model.encoder_head=[32]",
        "model.input_points=256",
        "trainer.max_steps=20",
        "trainer.val_check_interval=10",
    ],
    "deepsdf": [
        *_SHAPES,
        "data.batch_size=4",
        "model.decoder.latent_size=8",
        "model.decoder.hidden=[32,32,32]",
        "model.train_samples=256",
        "model.recon_iterations=20",
        "model.recon_samples=256",
        "model.recon_target_samples=2048",
        "model.val_iterations=5",
        "model.val_samples=128",
        "model.points_resolution=24",
        "trainer.max_steps=20",
        "trainer.val_check_interval=10",
    ],
    "nerf": [
        *_VIEWS,
        "data.rays_per_batch=128",
        "model.num_samples=16",
        "model.field.width=32",
        "model.field.depth=2",
        "model.field.pos_freqs=4",
        "model.chunk=2048",
        "trainer.max_steps=30",
        "trainer.val_check_interval=15",
    ],
    "mipnerf": [
        *_VIEWS,
        "data.rays_per_batch=128",
        "model.num_samples=8",
        "model.field.width=32",
        "model.field.depth=2",
        "model.field.max_deg=6",
        "model.chunk=2048",
        "trainer.max_steps=30",
        "trainer.val_check_interval=15",
    ],
    "gaussians": [
        *_VIEWS,
        "model.num_init=300",
        "model.strategy.refine_start=5",
        "model.strategy.refine_every=5",
        "model.strategy.refine_stop=20",
        "model.sh_degree_every=10",
        "model.lr_means_steps=20",
        "model.mesh_views=4",
        "model.points_resolution=24",
        "trainer.max_steps=20",
        "trainer.val_check_interval=10",
    ],
    "pointnerf": [
        *_VIEWS,
        "data.rays_per_batch=128",
        "model.num_init=1500",
        "model.max_points=2000",
        "model.aggregator.feature_dim=8",
        "model.aggregator.hidden_dim=16",
        "model.aggregator.colour_layers=1",
        "model.steps_per_diagonal=32",
        "model.grid_resolution=16",
        "model.grow_every=10",
        "model.prune_every=10",
        "model.chunk=2048",
        "trainer.max_steps=30",
        "trainer.val_check_interval=15",
    ],
    "ngp": [
        *_VIEWS,
        "data.rays_per_batch=128",
        "model.field.encoding.num_levels=2",
        "model.field.encoding.log2_table_size=10",
        "model.field.encoding.max_resolution=32",
        "model.field.hidden_dim=16",
        "model.steps_per_diagonal=32",
        "model.chunk=2048",
        "trainer.max_steps=30",
        "trainer.val_check_interval=15",
    ],
}


def registered_names() -> list[str]:
    """Every registered model's name, sorted (the parametrisation of the registry-wide tests)."""
    from zoo.models.registry import registered_models

    return sorted(registered_models())


def tiny_run_args(model: str, data_root: Path, run_dir: Path, *extra: str) -> list[str]:
    """``zoo.train`` overrides for a seconds-long run of ``model`` on ``data_root``."""
    if model not in TINY:
        raise KeyError(
            f"no tiny run for model {model!r}: add its overrides to tests/helpers/tiny_runs.py"
        )
    return [
        f"model={model}",
        f"data.root={data_root}",
        *TINY[model],
        "trainer.log_every_n_steps=1",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]
