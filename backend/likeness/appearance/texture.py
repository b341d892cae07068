"""Project the photos onto the head's UV layout (colour textures, sRGB).

For each texel of a projected material we know the surface point (from a UV-space rasterisation, computed once
per model and texture size), project it into every photo, and keep it where the photo sees it: in front of the
camera, not hidden by other parts of the head (a depth buffer per photo) and facing the camera. Photos are
blended with weight cos²(view angle) × (the photo's resolution on the face relative to the sharpest photo)²
× (how surely the photo's pixel there is skin, where the photo has a skin mask:
:mod:`likeness.capture.segment`), so hair, clothing and background never reach the skin albedo.
Texels no photo saw borrow the mirror image of their surface point (the head is nearly symmetric) where that was
seen, then fade into a smooth continuation of the seen skin around them (:mod:`likeness.appearance.fill`), itself fading
to a skin tone estimated from the well-seen face; the colour is spread a few texels beyond the
UV islands so filtering shows no seams.
Per-texel arrays are laid out as "strip" images so OpenCV's fast remap and blend can work on them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cached_property, lru_cache

import cv2
import numpy as np
from scipy import ndimage, sparse
from scipy.spatial import cKDTree

from . import uvcache
from .fill import FillGrid, fill_grid, texture_fill
from ..model.camera import Camera
from ..model.headmodel import HeadModel, split_quads
from .raster import rasterize, vertex_normals
from .views import HeadRaster, rasterize_head

#: Colour is spread this many texels past the UV islands.
_MARGIN = 8
#: A vertex seen with a total weight below this also borrows its mirror image (fully when unseen).
MIRROR_BELOW = 0.3
#: Texels seen with a total weight below this fade into the fill colour (weight: this − the total).
FILL_BELOW = 0.15


@dataclass(frozen=True)
class UVMap:
    """Texel → surface lookup for one material at one texture size.

    The N texels inside the UV islands are listed in ``texels`` (flat indices into the S×S grid); each is a
    blend of three vertices, the rows of the sparse (N,V) matrix ``blend``. For each texel outside the islands
    (``outside``, flat indices) ``nearest`` names the closest inside texel (index into the N), used to spread
    colour past the island borders; ``far`` marks those too far from any island to borrow a colour.
    """

    size: int
    texels: np.ndarray  # (N,) int64
    blend: sparse.csr_matrix  # (N,V) barycentric weights, 3 per row
    outside: np.ndarray  # (M,) int64
    nearest: np.ndarray  # (M,) int32
    far: np.ndarray  # (M,) bool
    strip_blend: sparse.csr_matrix  # ``blend`` with empty rows appended up to a whole strip (same arrays)

    @cached_property
    def fill_grid(self) -> FillGrid:
        """Where the texels sit, for the smooth skin fill (:func:`likeness.appearance.fill.texture_fill`); made on
        first use."""
        return fill_grid(self.texels, self.size)

    @cached_property
    def fill_blend(self) -> sparse.csr_matrix:
        """The rows of ``blend`` at the fill grid's sample texels, with empty rows up to a whole strip."""
        rows = self.blend[self.fill_grid.sample]
        indptr = np.concatenate([rows.indptr, np.full((-rows.shape[0]) % _STRIP, rows.indptr[-1])])
        return sparse.csr_matrix((rows.data, rows.indices, indptr), shape=(len(indptr) - 1, rows.shape[1]),
                                 copy=False)


@dataclass(frozen=True)
class PhotoView:
    """One photo with the fitted head in camera space: its rasterisation, vertex normals, and where each vertex
    lands in the photo and how well the photo sees it (computed once, shared by delighting and the bake)."""

    rgb: np.ndarray  # (H,W,3) uint8
    camera: Camera
    vertices_cam: np.ndarray  # (V,3) head vertices in the camera frame, metres
    raster: HeadRaster
    normals: np.ndarray  # (V,3) unit vertex normals, camera frame
    px: np.ndarray  # (V,2) float32 pixel positions
    visibility: np.ndarray  # (V,) float32 in [0, 1], see :func:`vertex_projection`
    #: (h,w) uint8 over the whole photo, at its size or smaller (sampled at the same relative position): 255 where
    #: the pixel is surely skin, 0 where not (likeness.capture.segment); None: every pixel is skin
    skin: np.ndarray | None = None

    def skin_mask(self) -> tuple[np.ndarray, float, float] | None:
        """The skin mask and its scale (mask pixels per photo pixel, x and y), None without one."""
        if self.skin is None:
            return None
        return self.skin, self.skin.shape[1] / self.rgb.shape[1], self.skin.shape[0] / self.rgb.shape[0]

    def skin_at_vertices(self) -> np.ndarray:
        """(V,) float32 in [0, 1]: the skin mask at each vertex's pixel (bilinear), 1 without a mask."""
        if self.skin is None:
            return np.ones(len(self.px), np.float32)
        sample = _sample_mask(self.skin_mask(), _as_strip(self.px[:, 0] - 0.5), _as_strip(self.px[:, 1] - 0.5))
        return sample.ravel()[:len(self.px)]

    @classmethod
    def build(cls, model: HeadModel, rgb: np.ndarray, camera: Camera, vertices_cam: np.ndarray) -> "PhotoView":
        raster = rasterize_head(model, vertices_cam, camera)
        normals = vertex_normals(vertices_cam, model.triangles)
        return cls(rgb, camera, vertices_cam, raster, normals,
                   *vertex_projection(vertices_cam, normals, camera, raster))


@lru_cache(maxsize=8)
def uv_map(model: HeadModel, material: int, size: int) -> UVMap:
    """Rasterise a material's triangles in UV space (cached per model, material and size, in memory and on disk
    across processes: :mod:`likeness.appearance.uvcache`)."""
    keep = np.flatnonzero(model.face_material[model.triangle_face] == material)
    triangles_uv = split_quads(model.faces_uv)[keep]
    digest = uvcache.key((model.uv, triangles_uv), material, size)
    path = uvcache.path_for(digest, material, size)
    arrays = uvcache.load(path)
    if arrays is None:
        arrays = _rasterise_uv(model.uv, triangles_uv, size)
        uvcache.save_later(path, arrays)
    texels, local, bary = arrays["texels"].astype(np.int64), arrays["local"], arrays["bary"]
    vertex_ids = model.triangles[keep][local]
    data, indices, n = bary.ravel(), vertex_ids.ravel(), len(texels)
    indptr = np.arange(0, 3 * (n + (-n) % _STRIP) + 1, 3).clip(max=3 * n)
    blend = sparse.csr_matrix((data, indices, indptr[:n + 1]), shape=(n, model.vertex_count))
    padded = sparse.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, model.vertex_count), copy=False)
    inside = np.zeros(size * size, bool)
    inside[texels] = True
    return UVMap(size=size, texels=texels, blend=blend, outside=np.flatnonzero(~inside),
                 nearest=arrays["nearest"], far=arrays["far"], strip_blend=padded)


def _rasterise_uv(uv: np.ndarray, triangles_uv: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """The UV rasterisation of triangles (T,3) into ``uv``: the covered texels (flat indices), the triangle
    (index into ``triangles_uv``) and barycentric weights at each, and for each texel outside the triangles the
    nearest covered texel (index into the covered ones) and whether it is farther than the colour margin."""
    corners = uv[triangles_uv].astype(np.float64) * size
    corners[..., 1] = size - corners[..., 1]  # v up → rows down
    local, bary = rasterize(corners, size, size)
    inside = local >= 0
    texels = np.flatnonzero(inside)
    compact = np.full(size * size, -1, np.int32)
    compact[texels] = np.arange(len(texels), dtype=np.int32)
    dist, (rows, cols) = ndimage.distance_transform_edt(~inside, return_indices=True)
    outside = np.flatnonzero(~inside)
    return {"texels": texels.astype(np.int32), "local": local.ravel()[texels].astype(np.int32),
            "bary": bary.reshape(-1, 3)[texels], "nearest": compact[(rows * size + cols).ravel()[outside]],
            "far": dist.ravel()[outside] > _MARGIN}


def vertex_projection(verts: np.ndarray, normals: np.ndarray, camera: Camera,
                      raster: HeadRaster) -> tuple[np.ndarray, np.ndarray]:
    """Where each vertex (camera frame) lands in the photo (V,2 pixels) and how well it is seen (V,) in [0, 1].

    The weight is cos²(angle between the surface normal and the view ray) where the vertex is in front of the
    camera, on the image and not hidden by the head itself (depth buffer, 4 mm tolerance), else 0.
    """
    px, depth = camera.project(verts)
    facing = -(normals * verts).sum(1) / np.maximum(np.linalg.norm(verts, axis=1), 1e-9)
    w, h = camera.size
    on_image = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    visible = on_image & (depth > 0) & (depth <= raster.depth_at(px) + 0.004) & (facing > 0.05)
    return px.astype(np.float32), np.where(visible, np.clip(facing, 0, 1) ** 2, 0.0).astype(np.float32)


@lru_cache(maxsize=4)
def mirror_vertices(model: HeadModel) -> np.ndarray:
    """(V,) index of the vertex nearest to each vertex's mirror image across the mid-plane (x → −x)."""
    return cKDTree(model.neutral * np.array([-1.0, 1.0, 1.0], np.float32)).query(model.neutral)[1]


def bake_textures(model: HeadModel, views: list[PhotoView], size: int,
                  on_texture: Callable[[int, np.ndarray], None] | None = None,
                  fill_color: np.ndarray | None = None, fill_below: float = FILL_BELOW) -> dict[int, np.ndarray]:
    """Colour textures (S,S,3) uint8 of every projected material, by material index.

    Photos are weighted by view angle, resolution and their skin mask (``PhotoView.skin``); poorly seen vertices
    borrow their mirror image, then ``fill_color`` (RGB 0–255) below a total weight of ``fill_below``; by default
    a smooth continuation of the seen skin around them, fading to the skin tone of the well-seen face
    (:func:`likeness.appearance.fill.texture_fill`).
    Materials bake in parallel threads (the heavy NumPy/OpenCV work releases the GIL);
    ``on_texture(material, texture)`` is called (in this thread) as each one is done, so its files can start
    encoding while the others bake.
    """
    rgba = [cv2.cvtColor(view.rgb, cv2.COLOR_RGB2RGBA) for view in views]  # once per photo, not per material
    direct = _resolution_weighted(views, [(image, view.px, view.visibility * view.skin_at_vertices())
                                          for image, view in zip(rgba, views)])
    direct = [(*d, view.skin_mask()) for d, view in zip(direct, views)]
    gap = np.clip(1.0 - sum(d[2] for d in direct) / MIRROR_BELOW, 0.0, 1.0)
    mirror = mirror_vertices(model)
    mirrored = [(rgb, px[mirror], (w[mirror] * gap).astype(np.float32), skin) for rgb, px, w, skin in direct]
    mirrored = [m for m in mirrored if m[2].any()]
    smooth = fill_color is None  # the skin tone, continued smoothly from the seen skin; a given colour: flat
    fill = skin_tone(model, [d[:3] for d in direct]) if fill_color is None else np.asarray(fill_color, np.float32)
    materials = [i for i, m in enumerate(model.materials) if m.projected]
    maps = {i: uv_map(model, i, size) for i in materials}
    # per material: the photos' pixel positions and weights at every texel, and the smooth fill (from a subset of
    # the texels), in parallel; then the texels blend in two halves; then the texture is packed. Each material's
    # texture is the same however the tasks run.
    textures: dict[int, np.ndarray] = {}
    values: dict[int, tuple[list, list]] = {}
    fills: dict[int, np.ndarray] = {}
    halves: dict[int, list] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        running: dict[Future, tuple[str, int, int]] = {}

        def start(kind: str, i: int, fn: Callable, *args, half: int = 0) -> None:
            running[pool.submit(fn, *args)] = (kind, i, half)

        for i in materials:
            start("values", i, _texel_values, maps[i], direct, mirrored)
            if smooth:
                start("fill", i, _smooth_fill, maps[i], direct + mirrored, fill)
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                kind, i, half = running.pop(future)
                if kind == "texture":
                    textures[i] = future.result()
                    if on_texture is not None:
                        on_texture(i, textures[i])
                elif kind == "half":
                    halves[i][half] = future.result()
                    if all(h is not None for h in halves[i]):
                        start("texture", i, _pack, maps[i], halves[i], fill)
                else:
                    (values if kind == "values" else fills)[i] = future.result()
                    if i in values and (i in fills or not smooth):
                        parts = _halves(values[i])
                        halves[i] = [None] * len(parts)
                        for h, part in enumerate(parts):
                            start("half", i, _blend, part, len(maps[i].texels), direct, mirrored, *values[i], fill,
                                  fill_below, fills.get(i), half=h)
    return {i: textures[i] for i in materials}


def _halves(values: tuple[list, list]) -> list[slice]:
    """The strip rows of a material's per-texel values (:func:`_texel_values`) in two halves (one when too few)."""
    direct, borrowed = values
    rows = (direct or borrowed)[0][0].shape[0]
    return [slice(0, rows // 2), slice(rows // 2, rows)] if rows > 1 else [slice(0, rows)]


def _resolution_weighted(views: list[PhotoView], projections: list) -> list:
    """Share each vertex's total weight among the photos in proportion to weight × (pixels per metre)².

    Sharper photos win where several see a vertex; the total (which decides mirror and skin-tone fill) stays
    what the photos' view angles give, so a vertex only a distant photo sees is still fully seen.
    """
    density = np.array([view.camera.focal_px / max(-float(np.median(view.vertices_cam[:, 2])), 1e-6)
                        for view in views])
    factor = (density / max(density.max(), 1e-9)) ** 2
    total = sum(w for _, _, w in projections)
    scaled = sum(w * f for (_, _, w), f in zip(projections, factor))
    keep = total / np.maximum(scaled, 1e-12)
    return [(rgb, px, (w * f * keep).astype(np.float32)) for (rgb, px, w), f in zip(projections, factor)]


def _texel_values(uvm: UVMap, direct: list[tuple], mirrored: list[tuple]) -> tuple[list, list]:
    """Each photo's pixel positions and weight at every texel of the material (:func:`_per_texel`), for the
    ``direct`` and the ``mirrored`` samples."""
    return tuple([_per_texel(uvm.strip_blend, px, weight, skin) for _, px, weight, skin in group]
                 for group in (direct, mirrored))


def _blend(part: slice, n: int, direct: list[tuple], mirrored: list[tuple], values: list[tuple],
           borrowed: list[tuple], fill_color: np.ndarray, fill_below: float = FILL_BELOW,
           smooth_fill: np.ndarray | None = None) -> np.ndarray:
    """The colour of one material's texels in the strip rows ``part`` (of ``n`` texels in all), RGBA packed in
    uint32, (rows × 4096,) with the strips' padding.

    ``direct`` and ``mirrored`` hold (RGBA photo, (V,2) pixel positions, (V,) weights, skin mask and its scale or
    None) per photo, ``values`` and ``borrowed`` their per-texel strips (:func:`_texel_values`).
    Each texel blends the photos (``direct``, then their ``mirrored`` samples) by their weights, each times the
    photo's skin mask at the texel's own pixel (crisper than the vertices' masks), plus the fill
    colour with weight ``max(fill_below − Σw, 0)`` so poorly seen texels fade into the skin tone (or into
    ``smooth_fill``, per texel, packed RGBA: :func:`_smooth_fill`). Pixel positions and
    weights are interpolated linearly from the vertices across each (small) triangle. Pixels travel as RGBA
    packed in uint32 for fast scatter/gather. Mirrored samples touch only the texels that need them. Every texel
    is blended on its own, so a material's parts can blend in parallel.
    """
    values, borrowed = ([(x[part], y[part], w[part]) for x, y, w in group] for group in (values, borrowed))
    acc = values[0][2].copy() if values else np.zeros_like(borrowed[0][2])  # Σ weights, in place: less memory
    for v in values[1:] + borrowed:
        acc += v[2]
    np.maximum(np.subtract(np.float32(fill_below), acc, out=acc), 0, out=acc)
    fill = np.append(np.round(fill_color), 255).astype(np.uint8)
    colors = np.empty((*acc.shape, 4), np.uint8)  # the strip layout of _as_strip, filled directly
    packed_fill = colors.reshape(-1, 4).view(np.uint32).ravel()  # one uint32 per RGBA texel: a fast fill
    packed_fill[:] = fill.view(np.uint32)[0]
    if smooth_fill is not None:  # the seen skin continued smoothly, fading to the tone (blended in as it would be)
        own = smooth_fill[part.start * _STRIP:min(part.stop * _STRIP, n)]
        packed_fill[:len(own)] = own
    for (rgba, *_), (x, y, w) in zip(direct, values):
        colors = cv2.blendLinear(colors, _remap(rgba, x, y), acc, w)
        acc += w
    flat, acc = colors.reshape(-1, 4), acc.ravel()
    for (rgba, *_), (x, y, w) in zip(mirrored, borrowed):
        w = w.ravel()
        rows = np.flatnonzero(w > 1e-4)
        if rows.size == 0:  # this photo's mirror image helps other materials (or parts) only
            continue
        sample = _remap(rgba, _as_strip(x.ravel()[rows]), _as_strip(y.ravel()[rows]))
        mixed = cv2.blendLinear(_as_strip(flat[rows]), sample, _as_strip(acc[rows]), _as_strip(w[rows]))
        flat[rows] = mixed.reshape(-1, 4)[:len(rows)]
        acc[rows] += w[rows]
    return flat.view(np.uint32).ravel()


def _pack(uvm: UVMap, parts: list[np.ndarray], fill_color: np.ndarray) -> np.ndarray:
    """The colour texture (S,S,3) uint8 from the blended texels (:func:`_blend`'s parts, in order), spread past
    the UV islands: outside texels take their nearest island texel (no seams under filtering), the fill colour
    where no island is near."""
    strip = np.concatenate(parts)[:len(uvm.texels)] if len(parts) > 1 else parts[0][:len(uvm.texels)]
    packed = np.empty(uvm.size * uvm.size, np.uint32)
    packed[uvm.texels] = strip
    border = strip[uvm.nearest]
    border[uvm.far] = np.append(np.round(fill_color), 255).astype(np.uint8).view(np.uint32)[0]
    packed[uvm.outside] = border
    return cv2.cvtColor(packed.view(np.uint8).reshape(uvm.size, uvm.size, 4), cv2.COLOR_RGBA2RGB)  # contiguous


def _smooth_fill(uvm: UVMap, photos: list[tuple], fill_color: np.ndarray) -> np.ndarray:
    """The fill colour of every texel, (N,) RGBA packed in uint32 (alpha 255): a smooth continuation of the seen
    colour around it (:func:`likeness.appearance.fill.texture_fill`), so the scalp and neck carry on the face's skin
    instead of meeting a flat tone at a seam. The seen colour is read at a regular subset of the texels only
    (``photos``: (RGBA photo, pixel positions, weights, skin mask) as for :func:`_blend`), each texel weighted by
    how well the photos see it (clipped to 1), so colour seen at a grazing angle counts little."""
    grid = uvm.fill_grid
    m = len(grid.sample)
    colour = np.zeros((m, 3), np.float32)
    weight = np.zeros(m, np.float32)
    for rgba, px, w, skin in photos:
        x, y, ws = _per_texel(uvm.fill_blend, px, w, skin)  # at the sample texels, in their order
        ws = ws.ravel()[:m]
        seen_here = ws > 1e-4
        rows = np.flatnonzero(seen_here)
        if rows.size == 0:
            continue
        if rows.size < m // 2:  # few texels (a mirror image's): read and add only those
            pixels = _remap(rgba, _as_strip(x.ravel()[rows]), _as_strip(y.ravel()[rows]))
            pixels = pixels.reshape(-1, 4)[:rows.size, :3]
            colour[rows] += ws[rows, None] * pixels
            weight[rows] += ws[rows]
            continue
        # most texels: add to all (weight 0 elsewhere: the same sums) rather than gather and scatter
        pixels = _remap(rgba, x, y).reshape(-1, 4)[:m, :3]
        ws = np.where(seen_here, ws, np.float32(0))
        colour += ws[:, None] * pixels
        weight += ws
    seen = np.minimum(weight, 1.0)
    premultiplied = colour * (seen / np.maximum(weight, 1e-6))[:, None]
    image = texture_fill(grid, premultiplied, seen, np.asarray(fill_color, np.float32))
    return image.view(np.uint32).ravel()[uvm.texels]


def _per_texel(blend: sparse.csr_matrix, px: np.ndarray, weight: np.ndarray,
               skin: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-vertex pixel positions (V,2) and weights (V,) interpolated at the texels (the rows of ``blend``, a
    whole number of strips: ``UVMap.strip_blend`` or ``fill_blend``), as three strip images (rows, 4096) float32
    (zero-padded): x and y (pixel centres at integers) and the weight, times the skin mask
    (H,W uint8) at the texel's pixel where there is one. One column at a time: SciPy's sparse product is several
    times slower per column on a multi-column right-hand side."""
    columns = np.concatenate([px - 0.5, weight[:, None]], axis=1).astype(np.float32)
    x, y, w = ((blend @ columns[:, j]).reshape(-1, _STRIP) for j in range(3))
    if skin is not None:
        w *= _sample_mask(skin, x, y)
    return x, y, w


def _sample_mask(mask: tuple[np.ndarray, float, float], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A mask (uint8, with its scale: :meth:`PhotoView.skin_mask`) at photo pixel positions given as strip images
    (centres at integers), bilinear, as float32 in [0, 1]."""
    image, sx, sy = mask
    if (sx, sy) != (1.0, 1.0):  # continuous coordinates scale; pixel centres sit half a pixel in
        x = x * np.float32(sx) + np.float32(0.5 * sx - 0.5)
        y = y * np.float32(sy) + np.float32(0.5 * sy - 0.5)
    return _remap(image, x, y).astype(np.float32) * np.float32(1 / 255)


_STRIP = 4096  # OpenCV images must be narrower and shorter than 32767 pixels


def _as_strip(values: np.ndarray) -> np.ndarray:
    """Lay N per-texel values, (N,) or (N,C), out as a (rows, 4096[, C]) image for OpenCV, zero-padded."""
    pad = (-len(values)) % _STRIP
    padded = np.concatenate([values, np.zeros((pad, *values.shape[1:]), values.dtype)])
    return padded.reshape(-1, _STRIP, *values.shape[1:])


def _remap(rgba: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of an RGBA image at pixel positions given as strip images (centres at integers)."""
    return cv2.remap(rgba, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def skin_tone(model: HeadModel, projections: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Median photo colour (RGB float32, 0–255) at the face vertices the photos (RGBA) see well (weight ≥ 0.5).

    Falls back to a neutral skin tone when no photo sees enough of the face.
    """
    face = slice(0, model.face_vertex_count)
    samples = []
    for rgba, px, weight in projections:
        good = weight[face] >= 0.5
        if not good.any():  # this photo sees none of the face well (OpenCV refuses an empty map)
            continue
        strip = _remap(rgba, _as_strip(px[face, 0][good] - 0.5), _as_strip(px[face, 1][good] - 0.5))
        samples.append(strip.reshape(-1, 4)[:good.sum(), :3])
    colors = np.concatenate(samples) if samples else np.zeros((0, 3))
    if len(colors) < 50:
        return np.array([200.0, 160.0, 140.0], np.float32)
    return np.median(colors, axis=0).astype(np.float32)


def bake_masks(model: HeadModel, views: list[PhotoView], masks: list[np.ndarray], size: int) -> dict[int, np.ndarray]:
    """Grey textures (S,S) uint8 of every projected material from per-photo masks (h,w uint8 over the whole photo,
    at any size; e.g. where each photo saw hair), blended like the colour (view angle, resolution, mirror image)
    without the skin masks; 0 where no photo saw the surface. Surface seen only at a grazing angle (the top of the
    scalp in a frontal photo) keeps what the photos saw there instead of fading to 0. Masks of three channels
    (h,w,3) bake as three masks at once, (S,S,3)."""
    probes = [PhotoView(np.ascontiguousarray(mask) if mask.ndim == 3 else cv2.cvtColor(np.ascontiguousarray(mask),
                                                                                       cv2.COLOR_GRAY2RGB),
                        view.camera, view.vertices_cam, view.raster, view.normals,
                        view.px * np.array([mask.shape[1] / view.rgb.shape[1], mask.shape[0] / view.rgb.shape[0]],
                                           np.float32), view.visibility) for view, mask in zip(views, masks)]
    baked = bake_textures(model, probes, size, fill_color=np.zeros(3), fill_below=0.01)
    grey = all(mask.ndim == 2 for mask in masks)
    return {i: texture[..., 0] if grey else texture for i, texture in baked.items()}
