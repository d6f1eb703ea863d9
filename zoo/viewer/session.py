"""One model in the live viewer: its scene, its controls, and the work they ask for.

Built from small ``server.scene.add_*`` calls and GUI handles with callbacks, as in viser's
examples. The callbacks run in viser's threads and only record what was asked; the heavy work
(sampling, meshing, volume rendering, snapshots, videos) happens in :meth:`ViewerSession.poll`,
called by whoever owns the model: the ``python -m zoo.view`` loop, or the training callback
between two optimisation steps, so rendering never races the optimiser.

What is shown depends only on the model's ``kind`` (the Representation interface):
- ``radiance``: rendered on demand at each browser's camera (:mod:`zoo.viewer.render`), rgb /
  depth / opacity, the training cameras as frustums;
- ``points``: the point cloud, with point count and size;
- ``voxel`` / ``sdf`` / ``mesh``: meshes (voxels as cubes or as their surface), drawn by seed,
  mesh resolution for implicit models, and latent interpolation where the model has an
  ``interpolate`` method.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.ops.splatting import quaternion_to_matrix
from zoo.representation import Representation
from zoo.viewer.cameras import BrowserPose, cameras_to_poses
from zoo.viewer.exports import camera_path_video, pose_of, snapshot
from zoo.viewer.render import OUTPUTS, RenderState, colorize, composite_depth, render_view
from zoo.viewer.scene import shape_geometry, training_cameras

log = logging.getLogger(__name__)

MESH_COLOR = (150, 175, 215)
SPACING = 1.25  # distance between samples laid out in a row (shapes have a unit diagonal)
INTERP_STEPS = 11  # interpolation frames, t = 0, 0.1, ..., 1


@dataclass
class ViewOptions:
    """Settings of a viewer session (``conf/view.yaml`` documents each)."""

    seed: int = 0
    n_samples: int = 1
    mesh_resolution: int = 64
    n_points: int = 2048
    point_size: float = 0.005
    preview_size: int = 64
    full_size: int = 256
    still_s: float = 0.25
    train_cameras: bool = True
    out: str = "view_out"
    video_frames: int = 36
    video_fps: int = 12
    video_size: int = 256


def _value(handle: Any, default: Any) -> Any:
    """A GUI control's value, or ``default`` where the control is not shown."""
    return default if handle is None else handle.value


def _height_colors(h: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 colours of points by their height (viridis), so depth reads at a glance."""
    from matplotlib import colormaps

    t = (h - h.min()) / max(float(np.ptp(h)), 1e-9)
    return (colormaps["viridis"](t)[:, :3] * 255).astype(np.uint8)


def splat_arrays(model: Any) -> dict[str, np.ndarray] | None:
    """viser ``add_gaussian_splats`` arrays of a model holding 3D Gaussians (``means``,
    ``log_scales``, ``quats`` w first, ``opacity_logits``, ``sh_dc``); None for other models.

    Covariance ``R S S^T R^T`` (Kerbl et al. 2023, Eq. 6); colour from the degree-0 SH term only
    (``0.5 + C0 * dc``: viser's splats are not view-dependent); opacity ``sigmoid(logit)``.
    """
    import torch

    names = ("means", "log_scales", "quats", "opacity_logits", "sh_dc")
    if not all(isinstance(getattr(model, n, None), torch.Tensor) for n in names):
        return None

    with torch.no_grad():
        rot = quaternion_to_matrix(model.quats.float())  # (N, 3, 3)
        m = rot * model.log_scales.float().exp()[:, None, :]  # R S
        cov = m @ m.transpose(1, 2)  # (N, 3, 3)
        rgb = (0.5 + 0.28209479177387814 * model.sh_dc.float().reshape(-1, 3)).clamp(0, 1)
        alpha = torch.sigmoid(model.opacity_logits.float()).reshape(-1, 1)
    return {
        "centers": model.means.detach().float().cpu().numpy(),
        "covariances": cov.cpu().numpy(),
        "rgbs": rgb.cpu().numpy(),
        "opacities": alpha.cpu().numpy(),
    }


class ViewerSession:
    """The scene and controls of ``model`` on a running ``viser.ViserServer``.

    Args:
        server: the viser server (see :func:`zoo.viewer.server.start_server`).
        model: any zoo model.
        options: :class:`ViewOptions`.
        meta: the checkpoint / weights metadata (for a radiance model's training cameras).
        training: whether the model is training (adds step, loss and a pause control; radiance
            frames stay at preview resolution unless paused).
        cameras: training cameras to draw (default: from ``meta``).
    """

    def __init__(
        self,
        server: Any,
        model: Representation,
        options: ViewOptions | None = None,
        meta: dict[str, Any] | None = None,
        training: bool = False,
        cameras: Any = None,
    ) -> None:
        self.server, self.model = server, model
        self.opt = options or ViewOptions()
        self.training = training
        self.radiance = model.kind == "radiance"
        self.out = Path(self.opt.out)
        self._lock = threading.Lock()  # guards everything the viser threads write
        self._requests: list[tuple[str, int]] = []
        self._states: dict[int, RenderState] = {}
        self._keyframes: list[BrowserPose] = []
        self._shapes_dirty = not self.radiance
        self._sample_handles: list[Any] = []
        self._interp_cache: tuple[tuple[int, int], list[Any]] | None = None
        self.frames = 0
        self.last_frame: dict[str, Any] = {}
        self.paused = False
        up = "+z" if self.radiance else "+y"
        server.scene.set_up_direction(up)
        self.up = np.array([0.0, 0.0, 1.0]) if self.radiance else np.array([0.0, 1.0, 0.0])
        # Far enough back to see a row of n samples (shapes have a unit diagonal), aimed a
        # little right of the row's centre so that the GUI panel (right) hides none of it.
        n = max(1, self.opt.n_samples)
        back, aim = 1.0 + 0.55 * (n - 1), 0.2 * (n - 1) * SPACING
        if self.radiance:
            server.initial_camera.position, target = (1.0, -1.0, 0.6), (0.0, 0.0, 0.0)
        else:
            server.initial_camera.position = (0.3 * back + aim, 0.55 * back, 1.5 * back)
            target = (aim, 0.0, 0.0)
        server.initial_camera.look_at = target
        server.initial_camera.fov = math.radians(45.0)
        self._build_gui()
        if self.radiance:
            cams = cameras if cameras is not None else training_cameras(meta)
            self._frustums = self._add_frustums(cams) if cams is not None else []
        server.on_client_connect(self._on_connect)
        server.on_client_disconnect(self._on_disconnect)

    # ---------------------------------------------------------------- GUI
    def _build_gui(self) -> None:
        gui, opt, model = self.server.gui, self.opt, self.model
        gui.add_markdown(f"**{model.name}** ({model.kind})")
        self.status = gui.add_markdown("loading...")
        if self.training:
            self.step_text = gui.add_text("step", "0", disabled=True)
            self.loss_text = gui.add_text("loss", "-", disabled=True)
            self.pause = gui.add_checkbox("pause training", False)
            self.pause.on_update(lambda _: self._set_paused(self.pause.value))
        if self.radiance:
            with gui.add_folder("render"):
                self.output = gui.add_dropdown("output", OUTPUTS, initial_value="rgb")
                self.preview_size = gui.add_slider("moving (px)", 16, 256, 8, opt.preview_size)
                self.full_size = gui.add_slider("still (px)", 32, 1024, 16, opt.full_size)
                self.show_cams = gui.add_checkbox("training cameras", opt.train_cameras)
                self.frame_text = gui.add_text("frames", "0", disabled=True)
            for h in (self.output, self.preview_size, self.full_size):
                h.on_update(lambda _: self._all_changed())
            self.show_cams.on_update(lambda _: self._toggle_frustums())
            self._splats = None
            if splat_arrays(self.model) is not None:  # 3D Gaussians: viser's native splats too
                with gui.add_folder("splats"):
                    self.show_splats = gui.add_checkbox("native splats (browser)", False)
                self.show_splats.on_update(lambda _: self._toggle_splats())
        else:
            displays = {"voxel": ("cubes", "surface"), "points": ("points", "surface")}
            self.display = self.resolution = self.n_points = self.point_size = None
            with gui.add_folder("samples"):
                self.seed = gui.add_number("seed", opt.seed, min=0, step=1)
                self.next_btn = gui.add_button("new sample")
                self.n_samples = gui.add_slider("samples", 1, 8, 1, opt.n_samples)
                self.display = gui.add_dropdown("display", displays.get(model.kind, ("surface",)))
                if model.kind in ("sdf", "points"):  # implicit surfaces: a grid to choose
                    self.resolution = gui.add_slider(
                        "mesh resolution", 16, 256, 16, opt.mesh_resolution
                    )
                if model.kind == "points":
                    self.n_points = gui.add_slider("points", 256, 16384, 256, opt.n_points)
                    self.point_size = gui.add_slider(
                        "point size", 0.002, 0.05, 0.001, opt.point_size
                    )
                    self.point_size.on_update(lambda _: self._set_point_size())
            self.next_btn.on_click(lambda _: self._next_seed())
            for h in (self.seed, self.n_samples, self.display, self.resolution, self.n_points):
                if h is not None:
                    h.on_update(lambda _: self._mark_shapes())
            if model.interpolates:
                with gui.add_folder("latent interpolation"):
                    self.interp_on = gui.add_checkbox("interpolate", False)
                    self.seed_b = gui.add_number("to seed", opt.seed + 1, min=0, step=1)
                    self.interp_t = gui.add_slider("t", 0.0, 1.0, 1.0 / (INTERP_STEPS - 1), 0.0)
                for h in (self.interp_on, self.seed_b, self.interp_t):
                    h.on_update(lambda _: self._mark_shapes())
        with gui.add_folder("export"):
            snap = gui.add_button("snapshot (PNG)")
            self.video_frames = gui.add_slider("video frames", 8, 240, 4, self.opt.video_frames)
            add_key = gui.add_button("add keyframe")
            clear = gui.add_button("clear keyframes")
            self.key_text = gui.add_text("keyframes", "0 (orbit)", disabled=True)
            video = gui.add_button("camera-path video")
        snap.on_click(lambda e: self._request("snapshot", e.client))
        video.on_click(lambda e: self._request("video", e.client))
        add_key.on_click(lambda e: self._add_keyframe(e.client))
        clear.on_click(lambda _: self._clear_keyframes())

    def _request(self, action: str, client: Any) -> None:
        if client is not None:
            with self._lock:
                self._requests.append((action, client.client_id))

    def _next_seed(self) -> None:
        self.seed.value = int(self.seed.value) + max(1, int(self.n_samples.value))

    def _mark_shapes(self) -> None:
        with self._lock:
            self._shapes_dirty = True

    def _all_changed(self) -> None:
        with self._lock:
            for st in self._states.values():
                st.changed()

    def _set_paused(self, paused: bool) -> None:
        with self._lock:
            self.paused = paused
            for st in self._states.values():
                st.full_allowed = paused or not self.training
                st.changed()

    def _add_keyframe(self, client: Any) -> None:
        if client is None:
            return
        with self._lock:
            self._keyframes.append(pose_of(client.camera))
            n = len(self._keyframes)
        self.key_text.value = f"{n}" + (" (orbit)" if n < 2 else "")

    def _clear_keyframes(self) -> None:
        with self._lock:
            self._keyframes.clear()
        self.key_text.value = "0 (orbit)"

    # ---------------------------------------------------------------- clients
    def _on_connect(self, client: Any) -> None:
        state = RenderState(self.opt.still_s, full_allowed=not self.training or self.paused)
        with self._lock:
            self._states[client.client_id] = state
            # a browser joining a training run sees the model as it is now
            self._shapes_dirty = self._shapes_dirty or (self.training and not self.radiance)

        def moved(camera: Any) -> None:
            with self._lock:
                state.camera_moved(pose_of(camera))

        client.camera.on_update(moved)

    def _on_disconnect(self, client: Any) -> None:
        with self._lock:
            self._states.pop(client.client_id, None)

    def keyframes(self) -> list[BrowserPose]:
        with self._lock:
            return list(self._keyframes)

    @property
    def n_clients(self) -> int:
        return len(self._states)

    # ---------------------------------------------------------------- model updates
    def model_changed(self) -> None:
        """The weights changed (training): redraw shapes / re-render frames on the next poll."""
        with self._lock:
            self._shapes_dirty = not self.radiance
            self._interp_cache = None  # decoded with the old weights
            for st in self._states.values():
                st.changed()

    def set_progress(self, step: int, loss: float | None) -> None:
        self.step_text.value = str(step)
        self.loss_text.value = "-" if loss is None else f"{loss:.5g}"

    # ---------------------------------------------------------------- the work
    def poll(self) -> bool:
        """Do what the browsers asked for since the last call; True if anything was done."""
        with self._lock:
            requests, self._requests = self._requests, []
            dirty, self._shapes_dirty = self._shapes_dirty, False
        did = bool(requests) or dirty
        if dirty:
            self._draw_shapes()
        if self.radiance:
            did |= self._render_due()
        for action, cid in requests:
            client = self.server.get_clients().get(cid)
            if client is None:
                continue
            try:
                export = snapshot if action == "snapshot" else camera_path_video
                path = export(self, client)
                client.add_notification(f"{action} saved", str(path), auto_close_seconds=6.0)
            except (RuntimeError, ValueError, TimeoutError) as e:
                client.add_notification(f"{action} failed", str(e), color="red")
        return did

    # -- radiance
    def _render_due(self) -> bool:
        did = False
        for cid, st in list(self._states.items()):
            with self._lock:
                quality, version, pose = st.due(), st.version, st.pose
            if quality is None or pose is None:
                continue
            size = self.preview_size.value if quality == "preview" else self.full_size.value
            t0 = time.perf_counter()
            maps = render_view(self.model, pose, int(size))
            seconds = time.perf_counter() - t0
            client = self.server.get_clients().get(cid)
            if client is None:
                continue
            output = self.output.value
            image = colorize(maps, output, self.model.near, self.model.far)
            depth = composite_depth(maps) if output == "rgb" else None
            client.scene.set_background_image(image, format="jpeg", depth=depth)
            with self._lock:
                st.rendered(version, quality)
            self.frames += 1
            h, w = image.shape[:2]
            self.last_frame = {"quality": quality, "width": w, "height": h, "seconds": seconds}
            self.frame_text.value = f"{self.frames} ({quality} {w}x{h}, {seconds * 1e3:.0f} ms)"
            self.status.content = f"rendered {self.frames} frames"
            did = True
        return did

    def _add_frustums(self, cams: Any) -> list[Any]:
        handles = []
        for i, pose in enumerate(cameras_to_poses(cams)):
            handles.append(
                self.server.scene.add_camera_frustum(
                    f"/train_cameras/{i:03d}", fov=pose.fov, aspect=pose.aspect, scale=0.05,
                    thickness=0.003, color=(230, 120, 30), wxyz=pose.wxyz,
                    position=pose.position, visible=self.opt.train_cameras,
                )
            )  # fmt: skip
        return handles

    def _toggle_splats(self) -> None:
        """Show the model's Gaussians as viser splats, drawn by the browser (WebGL) rather than
        rendered here; built on first use and rebuilt when shown again (training moves them)."""
        on = bool(self.show_splats.value)
        if self._splats is not None:
            self._splats.remove()
            self._splats = None
        arrays = splat_arrays(self.model) if on else None
        if arrays is not None:
            self._splats = self.server.scene.add_gaussian_splats("/splats", **arrays)

    def _toggle_frustums(self) -> None:
        for h in self._frustums:
            h.visible = bool(self.show_cams.value)

    # -- shapes
    def _shapes(self) -> list[Any]:
        model, seed = self.model, int(self.seed.value)
        if model.interpolates and self.interp_on.value:
            ends = (seed, int(self.seed_b.value))
            if self._interp_cache is None or self._interp_cache[0] != ends:
                za, zb = (self._latent(s) for s in ends)
                self._interp_cache = (ends, model.interpolate(za, zb, steps=INTERP_STEPS))
            i = round(float(self.interp_t.value) * (INTERP_STEPS - 1))
            return [self._interp_cache[1][i]]
        return model.sample(int(self.n_samples.value), seed=seed)

    def _latent(self, seed: int) -> Any:
        """The latent code drawn with ``seed`` (``Representation.sample_latents``)."""
        return self.model.sample_latents(1, seed=seed)[0]

    def _draw_shapes(self) -> None:
        t0 = time.perf_counter()
        display = str(self.display.value)
        was_training = getattr(self.model, "training", False)
        self.model.eval()  # type: ignore[attr-defined]
        try:
            with torch.no_grad():
                shapes = self._shapes()
                geoms = [
                    shape_geometry(
                        self.model, s, display,
                        _value(self.resolution, self.opt.mesh_resolution),
                        _value(self.n_points, self.opt.n_points),
                    )
                    for s in shapes
                ]  # fmt: skip
        except ValueError as e:
            self.status.content = f"could not draw: {e}"
            return
        finally:
            self.model.train(was_training)  # type: ignore[attr-defined]
        for h in self._sample_handles:
            h.remove()
        self._sample_handles = []
        offset = (len(geoms) - 1) * SPACING / 2
        for i, g in enumerate(geoms):
            pos = (i * SPACING - offset, 0.0, 0.0)
            name = f"/samples/{i}"
            if isinstance(g, np.ndarray):
                size = float(_value(self.point_size, self.opt.point_size))
                handle = self.server.scene.add_point_cloud(
                    name, g, colors=_height_colors(g[:, 1]), point_size=size, position=pos
                )
            elif len(g.faces) > 0:
                handle = self.server.scene.add_mesh_simple(
                    name, np.asarray(g.vertices, np.float32), np.asarray(g.faces, np.uint32),
                    color=MESH_COLOR, flat_shading=display == "cubes", side="double",
                    position=pos,
                )  # fmt: skip
            else:
                continue
            self._sample_handles.append(handle)
        n = sum(len(g) if isinstance(g, np.ndarray) else len(g.faces) for g in geoms)
        unit = "points" if display == "points" else "faces"
        self.status.content = (
            f"{len(geoms)} shape(s), {n} {unit}, drawn in {time.perf_counter() - t0:.2f} s"
        )

    def _set_point_size(self) -> None:
        for handle in self._sample_handles:
            if hasattr(handle, "point_size"):
                handle.point_size = float(_value(self.point_size, self.opt.point_size))


__all__ = ["ViewOptions", "ViewerSession"]
