"""A differentiable renderer of our head in torch (imported only when an edit runs).

Visibility is decided without gradients by the NumPy rasteriser (:func:`likeness.appearance.views.rasterize_head`: which
triangle covers each pixel and its barycentric weights), once per view and again whenever the shape has moved;
everything after that is torch, so gradients reach:

- the albedo UV maps (each pixel samples its material's map bilinearly at its interpolated UV);
- the SH light (9 coefficients × RGB, head frame; ``likeness.appearance.light``'s convention);
- the vertex positions, hence identity and expression coefficients, through the shading (the pixel's normal
  is interpolated from vertex normals of the current shape). Silhouettes do not move with the shape within one
  rasterisation: shape is steered by shading only, as in shape from shading.

Units and axes: metres, head frame (+X subject's left, +Y up, +Z out of the face); cameras as in
``likeness.model.camera`` (OpenGL style, pixels y down). Images are (3,H,W) sRGB in [0,1]; albedo maps are linear RGB
(3,S,S) with row 0 at v = 1 (the PNG's top row), as in the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..model.camera import Camera
from ..model.headmodel import HeadModel, split_quads
from ..appearance.views import rasterize_head
from .cameras import orbit_camera

_SH_C = (0.282095, 0.488603, 1.092548, 0.315392, 0.546274)


def pick_device(device: str = "auto") -> str:
    """``auto`` → cuda where present, else mps, else cpu; a named device is checked (:class:`BadInput`)."""
    from ..errors import BadInput

    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if mps else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise BadInput("CUDA was asked for, but torch sees no CUDA device.", "Use --device cpu or auto.")
    if device == "mps" and not mps:
        raise BadInput("MPS was asked for, but torch sees no Apple GPU.", "Use --device cpu or auto.")
    return device


def sh_basis(n: torch.Tensor) -> torch.Tensor:
    """The nine real SH functions (N,9) of unit directions (N,3), in ``likeness.appearance.light.sh_basis``'s order."""
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    c0, c1, c2, c3, c4 = _SH_C
    return torch.stack([torch.full_like(x, c0), c1 * y, c1 * z, c1 * x, c2 * x * y, c2 * y * z,
                        c3 * (3 * z * z - 1), c2 * x * z, c4 * (x * x - y * y)], 1)


def linear_to_srgb(v: torch.Tensor) -> torch.Tensor:
    v = v.clamp(0.0, 1.0)
    return torch.where(v <= 0.0031308, v * 12.92, 1.055 * v.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def srgb_to_linear(v: torch.Tensor) -> torch.Tensor:
    return torch.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def vertex_normals(verts: torch.Tensor, tris: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (V,3) of triangles (N,3) wound counter-clockwise from outside."""
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    fn = torch.linalg.cross(b - a, c - a)
    normals = torch.zeros_like(verts).index_add_(0, tris.reshape(-1), fn.repeat_interleave(3, 0))
    return F.normalize(normals, dim=1, eps=1e-12)


@dataclass
class View:
    """One camera looking at the head: intrinsics, head-to-camera transform (4×4) and the rasterisation of the
    shape it was last rasterised for (pixel ids, triangle ids, barycentrics, per-pixel UVs and materials)."""

    camera: Camera
    model_to_camera: np.ndarray  # (4,4)
    max_side: int
    pixels: torch.Tensor | None = None  # (P,) flat indices of covered pixels
    triangles: torch.Tensor | None = None  # (P,) rows of model.triangles
    bary: torch.Tensor | None = None  # (P,3)
    uv: torch.Tensor | None = None  # (P,2) in [0,1], v up
    material: torch.Tensor | None = None  # (P,)
    shape: tuple[int, int] = (0, 0)  # (H,W) of the rendered image


def orbit_view(centre: np.ndarray, yaw_deg: float, pitch_deg: float, size: int) -> View:
    """A :class:`View` from :func:`likeness.edit.cameras.orbit_camera`."""
    camera, matrix = orbit_camera(centre, yaw_deg, pitch_deg, size)
    return View(camera, matrix, size)


class HeadRenderer:
    """Renders one head topology; the textures, light and vertices come with each call."""

    def __init__(self, model: HeadModel, textured: dict[int, int], device: str = "cpu") -> None:
        """``textured`` maps a material index to the index of its albedo map in the ``maps`` list of
        :meth:`render`; other materials show their linear base colour."""
        self.model, self.device = model, device
        self.tris = torch.as_tensor(model.triangles, dtype=torch.long, device=device)
        self.uv_tris = split_quads(model.faces_uv)
        self.tri_material = model.face_material[model.triangle_face]
        self.base = torch.tensor([m.base_color[:3] for m in model.materials], dtype=torch.float32, device=device)
        self.textured = dict(textured)

    def rasterise(self, view: View, vertices: np.ndarray) -> None:
        """(Re)compute ``view``'s visibility for the head's vertices (V,3), head frame, metres."""
        m = view.model_to_camera
        cam_verts = vertices @ m[:3, :3].T + m[:3, 3]
        raster = rasterize_head(self.model, cam_verts, view.camera, view.max_side)
        hit = raster.triangle >= 0
        tri = raster.triangle[hit]
        bary = raster.bary[hit].astype(np.float32)
        uv = np.einsum("nk,nkd->nd", bary, self.model.uv[self.uv_tris[tri]].astype(np.float32))
        dev = self.device
        view.pixels = torch.as_tensor(np.flatnonzero(hit), device=dev)
        view.triangles = torch.as_tensor(tri, dtype=torch.long, device=dev)
        view.bary = torch.as_tensor(bary, device=dev)
        view.uv = torch.as_tensor(uv, device=dev)
        view.material = torch.as_tensor(self.tri_material[tri], dtype=torch.long, device=dev)
        view.shape = hit.shape

    def render(self, view: View, vertices: torch.Tensor, maps: list[torch.Tensor], light: torch.Tensor,
               background: torch.Tensor | float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
        """The head seen by ``view``: image (3,H,W) sRGB in [0,1] and coverage mask (H,W) bool.

        ``vertices`` (V,3) head frame, metres; ``maps`` linear albedo (3,S,S) per textured material; ``light``
        (9,3) SH shading in the head frame; ``background`` a grey level or an image (3,H,W) sRGB.
        """
        if view.pixels is None:
            self.rasterise(view, vertices.detach().cpu().numpy())
        h, w = view.shape
        normals = vertex_normals(vertices, self.tris)
        corners = self.tris[view.triangles]  # (P,3)
        n = F.normalize((normals[corners] * view.bary[..., None]).sum(1), dim=1, eps=1e-12)
        shading = (sh_basis(n) @ light).clamp_min(0.0)  # (P,3)
        albedo = self.base[view.material]
        for material, index in self.textured.items():
            sel = torch.nonzero(view.material == material).squeeze(1)
            if len(sel) == 0:
                continue
            grid = torch.stack([view.uv[sel, 0] * 2 - 1, 1 - view.uv[sel, 1] * 2], -1)[None, None]  # (1,1,P,2)
            sampled = F.grid_sample(maps[index][None], grid, mode="bilinear", align_corners=False,
                                    padding_mode="border")[0, :, 0].T  # (P,3)
            albedo = albedo.index_copy(0, sel, sampled)
        colour = linear_to_srgb(albedo * shading)
        if isinstance(background, torch.Tensor):
            image = background.reshape(3, -1).clone()
        else:
            image = torch.full((3, h * w), float(background), device=self.device)
        image = image.index_copy(1, view.pixels, colour.T.to(image.dtype))
        mask = torch.zeros(h * w, dtype=torch.bool, device=self.device)
        mask[view.pixels] = True
        return image.reshape(3, h, w), mask.reshape(h, w)
