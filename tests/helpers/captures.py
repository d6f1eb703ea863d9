"""Small captures in every supported layout, written from one ray-cast truth scene.

:func:`truth_scene` renders a coloured box (``zoo.ops.raycast.render_mesh``: images, z-depth,
masks) from cameras on a ring (or, ``forward=True``, a forward-facing grid); the writers put
it on disk as nerfstudio / COLMAP (bin and txt) / LLFF / DTU / ScanNet would, so a loader can
be checked against the known images, intrinsics and poses.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import trimesh
from scipy.spatial.transform import Rotation

from zoo.ops.camera_math import opencv_to_opengl
from zoo.ops.raycast import render_mesh
from zoo.structures.cameras import Cameras, look_at


@dataclass
class Truth:
    images: np.ndarray  # (N, H, W, 3) float in [0, 1], on white
    depth: np.ndarray  # (N, H, W) z-depth, 0 on background
    mask: np.ndarray  # (N, H, W) bool
    c2w: np.ndarray  # (N, 4, 4) OpenGL
    fx: np.ndarray  # (N,)
    fy: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    width: int
    height: int
    points: np.ndarray  # (M, 3) surface points
    mesh: trimesh.Trimesh


def truth_scene(
    n: int = 8, width: int = 24, height: int = 20, forward: bool = False, one_camera: bool = False
) -> Truth:
    """The box seen by ``n`` cameras (per-view focal lengths differ slightly, the principal
    point is off-centre; ``forward``: LLFF-like, one centred pinhole)."""
    mesh = trimesh.creation.box(extents=(1.0, 0.8, 0.6))
    if forward:  # LLFF-like: cameras on a small grid at z = 3 looking along -z
        xs = np.linspace(-0.3, 0.3, n)
        eyes = torch.tensor([[x, 0.1 * np.sin(3 * x), 3.0] for x in xs], dtype=torch.float32)
        c2w = look_at(eyes, torch.zeros(3), up=torch.tensor([0.0, 1.0, 0.0]))
    else:
        a = torch.linspace(0, 2 * np.pi, n + 1)[:-1]
        eyes = torch.stack([3 * torch.cos(a), 3 * torch.sin(a), 1.2 + 0.2 * torch.sin(2 * a)], -1)
        c2w = look_at(eyes)
    fx = 30.0 + torch.arange(n, dtype=torch.float32)
    fy = fx * 1.05
    cx = torch.full((n,), width / 2 + 0.7)
    cy = torch.full((n,), height / 2 - 0.4)
    if one_camera:  # ScanNet: one intrinsic matrix for the sequence
        fx, fy = torch.full((n,), 30.0), torch.full((n,), 31.5)
    if forward:  # LLFF: one focal length, principal point at the centre
        fx = fy = torch.full((n,), 30.0)
        cx, cy = torch.full((n,), width / 2), torch.full((n,), height / 2)
    cams = Cameras(c2w, fx, fy, cx, cy, width, height)
    out = render_mesh(mesh, cams)
    points = trimesh.sample.sample_surface(mesh, 200, seed=0)[0]
    return Truth(
        images=out["rgb"].numpy(),
        depth=out["depth"].numpy(),
        mask=out["mask"].numpy(),
        c2w=c2w.double().numpy(),
        fx=fx.double().numpy(),
        fy=fy.double().numpy(),
        cx=cx.double().numpy(),
        cy=cy.double().numpy(),
        width=width,
        height=height,
        points=np.asarray(points),
        mesh=mesh,
    )


def _u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def write_nerfstudio(t: Truth, root: Path, depth: bool = True) -> Path:
    """``root/transforms.json`` with per-frame intrinsics, images/ and 16-bit depth/ (mm)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(len(t.images)):
        iio.imwrite(root / "images" / f"frame_{i:05d}.png", _u8(t.images[i]))
        fr = {
            "file_path": f"images/frame_{i:05d}.png",
            "transform_matrix": t.c2w[i].tolist(),
            "fl_x": float(t.fx[i]),
            "fl_y": float(t.fy[i]),
        }
        if depth:
            (root / "depth").mkdir(exist_ok=True)
            iio.imwrite(root / "depth" / f"{i}.png", (t.depth[i] * 1000).round().astype(np.uint16))
            fr["depth_file_path"] = f"depth/{i}.png"
        frames.append(fr)
    meta = {
        "camera_model": "OPENCV",
        "cx": float(t.cx[0]),
        "cy": float(t.cy[0]),
        "w": t.width,
        "h": t.height,
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "frames": frames,
    }
    path = root / "transforms.json"
    path.write_text(json.dumps(meta))
    return path


def _w2c_opencv(c2w_gl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COLMAP's (qvec w x y z, tvec) of an OpenGL camera-to-world."""
    w2c = np.linalg.inv(opencv_to_opengl(c2w_gl))
    x, y, z, w = Rotation.from_matrix(w2c[:3, :3]).as_quat()
    q = np.array([w, x, y, z])
    return q, w2c[:3, 3]


def write_colmap(t: Truth, root: Path, binary: bool = True, model: str = "PINHOLE") -> Path:
    """``root/sparse/0/{cameras,images,points3D}.{bin,txt}`` and ``root/images/``; one camera
    per image (their focal lengths differ)."""
    from zoo.data.formats.colmap import MODEL_IDS

    sparse = root / "sparse" / "0"
    sparse.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    n = len(t.images)
    cams, imgs = [], []
    for i in range(n):
        iio.imwrite(root / "images" / f"{i:03d}.png", _u8(t.images[i]))
        cx, cy = t.cx[i], t.cy[i]
        params = [t.fx[i], t.fy[i], cx, cy] if model == "PINHOLE" else [t.fx[i], cx, cy, 0.0]
        cams.append((i + 1, model, params))
        q, tv = _w2c_opencv(t.c2w[i])
        imgs.append((i + 1, q, tv, i + 1, f"{i:03d}.png"))
    colors = np.full((len(t.points), 3), 128, dtype=np.uint8)
    if binary:
        with open(sparse / "cameras.bin", "wb") as f:
            f.write(struct.pack("<Q", n))
            for cid, m, p in cams:
                f.write(struct.pack("<iiQQ", cid, MODEL_IDS[m], t.width, t.height))
                f.write(struct.pack(f"<{len(p)}d", *p))
        with open(sparse / "images.bin", "wb") as f:
            f.write(struct.pack("<Q", n))
            for iid, q, tv, cid, name in imgs:
                f.write(struct.pack("<i7di", iid, *q, *tv, cid))
                f.write(name.encode() + b"\x00")
                f.write(struct.pack("<Q", 1))
                f.write(struct.pack("<ddq", 1.0, 2.0, -1))
        with open(sparse / "points3D.bin", "wb") as f:
            f.write(struct.pack("<Q", len(t.points)))
            for j, (p, c) in enumerate(zip(t.points, colors, strict=True)):
                f.write(struct.pack("<Q3d3BdQ", j + 1, *p, *c, 0.5, 1))
                f.write(struct.pack("<ii", 1, 0))
    else:
        lines = [
            "# Camera list",
            *[f"{cid} {m} {t.width} {t.height} " + " ".join(map(str, p)) for cid, m, p in cams],
        ]
        (sparse / "cameras.txt").write_text("\n".join(lines) + "\n")
        lines = ["# Image list"]
        for iid, q, tv, cid, name in imgs:
            lines.append(f"{iid} " + " ".join(repr(float(v)) for v in [*q, *tv]) + f" {cid} {name}")
            lines.append("")  # no 2D points
        (sparse / "images.txt").write_text("\n".join(lines) + "\n")
        lines = [
            f"{j + 1} {p[0]} {p[1]} {p[2]} 128 128 128 0.5 1 0" for j, p in enumerate(t.points)
        ]
        (sparse / "points3D.txt").write_text("\n".join(lines) + "\n")
    return root


def write_llff(t: Truth, root: Path, bounds: tuple[float, float] = (2.0, 4.0)) -> Path:
    """``poses_bounds.npy`` + ``images/`` (factor 1); one focal length (LLFF has one)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(len(t.images)):
        iio.imwrite(root / "images" / f"IMG_{i:04d}.png", _u8(t.images[i]))
        r = t.c2w[i, :3, :3]
        # OpenGL (right, up, back) -> LLFF (down, right, back)
        r_llff = np.stack([-r[:, 1], r[:, 0], r[:, 2]], axis=1)
        m = np.concatenate([r_llff, t.c2w[i, :3, 3:4], [[t.height], [t.width], [t.fx[0]]]], 1)
        rows.append(np.concatenate([m.reshape(-1), bounds]))
    np.save(root / "poses_bounds.npy", np.asarray(rows))
    return root


def write_dtu(t: Truth, root: Path, scale: float = 2.0, offset=(0.3, -0.2, 0.1)) -> Path:
    """``image/``, ``mask/`` and ``cameras_sphere.npz`` with ``world_mat = K [R | t]`` of the
    truth scaled by ``scale`` and moved by ``offset`` (undone by ``scale_mat``)."""
    (root / "image").mkdir(parents=True, exist_ok=True)
    (root / "mask").mkdir(exist_ok=True)
    mats = {}
    scale_mat = np.eye(4)
    scale_mat[:3, :3] *= scale
    scale_mat[:3, 3] = offset
    for i in range(len(t.images)):
        iio.imwrite(root / "image" / f"{i:06d}.png", _u8(t.images[i]))
        iio.imwrite(root / "mask" / f"{i:03d}.png", (t.mask[i] * 255).astype(np.uint8))
        c2w_world = opencv_to_opengl(t.c2w[i])  # OpenCV axes, truth frame
        c2w_world[:3, 3] = scale * c2w_world[:3, 3] + offset  # the "world" of the DTU files
        k = np.eye(4)
        k[0, 0], k[1, 1] = t.fx[i], t.fy[i]
        k[0, 2], k[1, 2] = t.cx[i] - 0.5, t.cy[i] - 0.5  # OpenCV: integer pixel centres
        mats[f"world_mat_{i}"] = 7.0 * (k @ np.linalg.inv(c2w_world))  # any scale of P
        mats[f"scale_mat_{i}"] = scale_mat
    np.savez(root / "cameras_sphere.npz", **mats)
    return root


def write_scannet(t: Truth, root: Path) -> Path:
    """``color/<i>.jpg``, ``depth/<i>.png`` (mm), ``pose/<i>.txt`` (OpenCV c2w) and the
    intrinsics (OpenCV, one camera: view 0's)."""
    for sub in ("color", "depth", "pose", "intrinsic"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    k = np.eye(4)
    k[0, 0], k[1, 1], k[0, 2], k[1, 2] = t.fx[0], t.fy[0], t.cx[0] - 0.5, t.cy[0] - 0.5
    np.savetxt(root / "intrinsic" / "intrinsic_color.txt", k)
    np.savetxt(root / "intrinsic" / "intrinsic_depth.txt", k)
    for i in range(len(t.images)):
        iio.imwrite(root / "color" / f"{i}.jpg", _u8(t.images[i]), quality=95)
        iio.imwrite(root / "depth" / f"{i}.png", (t.depth[i] * 1000).round().astype(np.uint16))
        np.savetxt(root / "pose" / f"{i}.txt", opencv_to_opengl(t.c2w[i]))
    return root
