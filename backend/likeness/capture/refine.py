"""Refinement against the photo (analysis by synthesis): render the fitted head, match the borders of its
openings to the photo's edges, and fit again.

The landmark fit sees the face through MediaPipe's points, which scatter by a few per cent of the inter-ocular
distance. The photo itself shows where the lips part: this stage rasterises the fitted head at a working resolution
(:data:`RefineSettings.working_iod_px` between the eyes), finds the skin pixels bordering what shows through an
opening (the mouth: teeth, gums and tongue; optionally the eyes: eyeballs), and searches the photo along each
border's normal for where its colour turns from the skin's to the opening's (reference colours taken from the photo
itself). Every edge found becomes one more observation for :func:`likeness.capture.fit.fit_landmarks`: the surface
point under the border pixel (triangle and barycentric weights) should project onto the edge. Identity stays as the
landmark fit found it (it is shared by all photos of the job); each photo's pose and expression are refined, a few
rounds of render, match, fit. Optional per job (``ReconstructRequest.refine``); the figures it moves are in
docs/quality.md.

Units: pixels of the photo (x right, y down); the private helpers work in pixels of the working raster.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from ..model.camera import Camera
from .contour import Contour
from ..model.correspondence import Correspondence
from .fit import FitResult, FitSettings, LandmarkBasis, Observation, PhotoFit, fit_landmarks
from ..model.headmodel import HeadModel
from .landmarks import interocular
from ..appearance.light import SRGB8_TO_LINEAR
from ..appearance.views import HeadRaster, rasterize_head

#: Material kinds seen through the eye openings and through the mouth opening.
OPENINGS = {"eyes": ("eye",), "mouth": ("mouth", "teeth")}
#: Longest side of the working raster, in pixels.
MAX_SIDE = 400


@dataclass(frozen=True)
class RefineSettings:
    """How the refinement looks at the photo."""

    # keys of OPENINGS whose borders are matched: the eyes' are off by default (the iris edge competes with the
    # lid margin and the refined weights were no better on the tuning renders, docs/quality.md)
    openings: tuple[str, ...] = ("mouth",)
    rounds: int = 3  # render → match edges → fit
    iterations: int = 6  # Gauss–Newton steps per round
    working_iod_px: float = 90.0  # the photo is resampled so the eyes' outer corners are this far apart
    search: float = 0.2  # how far along the normal to look for the edge, × inter-ocular distance
    max_edges: int = 80  # border samples per opening (eyes together, mouth)
    min_contrast: float = 0.04  # skin and opening colours (linear RGB) must differ by this to be told apart
    edge_weight: float = 1.0  # weight of one edge observation relative to one landmark


@dataclass(frozen=True)
class Edges:
    """Edge observations in one photo: surface points (triangle vertex ids (N,3), barycentric weights (N,3)) and
    where the photo says they should project (N,2) px."""

    vertex_ids: np.ndarray
    weights: np.ndarray
    targets_px: np.ndarray

    def __len__(self) -> int:
        return len(self.targets_px)


def refine(model: HeadModel, basis: LandmarkBasis, observations: list[Observation], images: list[np.ndarray],
           result: FitResult, fit_settings: FitSettings, settings: RefineSettings = RefineSettings()) -> FitResult:
    """Refine each photo's pose and expression of ``result`` against its image (H,W,3 uint8 RGB); identity is
    kept. Returns a new :class:`FitResult` (``result`` is untouched). A photo whose edges were used lists
    ``photo_edges`` in its ``evidence`` and has its landmark residuals recomputed for the refined pose; a photo
    where no edge is found keeps its landmark fit."""
    fixed = fold_identity(basis, result.identity)
    neutral = model.vertices(result.identity)  # the person's neutral head (V,3) m, held by the refinement
    step = replace(fit_settings, iterations=settings.iterations, pose_only_iterations=0)
    photos = []
    for obs, rgb, fit in zip(observations, images, result.photos, strict=True):
        window = working_window(rgb, obs, settings)
        current = fit
        for _ in range(settings.rounds):
            edges = find_edges(model, neutral, current, obs, window, settings)
            if not len(edges):
                break
            extended, observed = with_edges(model, neutral, fixed, obs, edges, settings.edge_weight)
            current = fit_landmarks(extended, [observed], step, start=[current]).photos[0]
        if current is not fit:  # the landmarks' residuals at the refined pose (no step taken)
            landmarks = fit_landmarks(fixed, [obs], replace(step, iterations=0), start=[current]).photos[0]
            current = replace(current, rmse_px=landmarks.rmse_px, rmse_iod=landmarks.rmse_iod, gaze=fit.gaze,
                              evidence=(*fit.evidence, "photo_edges"))
        photos.append(current)
    return FitResult(identity=result.identity, photos=photos, iterations=result.iterations)


@dataclass(frozen=True)
class Window:
    """The photo around the face on the working grid: pixel (r, c) there is photo pixel
    ``((c + 0.5 + origin_x) / scale − 0.5, (r + 0.5 + origin_y) / scale − 0.5)`` (index coordinates)."""

    origin: np.ndarray  # (2,) working pixels
    scale: float  # working pixels per photo pixel
    image: np.ndarray  # (h,w,3) linear RGB; NaN outside the photo


def working_window(rgb: np.ndarray, obs: Observation, settings: RefineSettings) -> Window:
    """Resample the face's surroundings (the landmarks' box plus a quarter of the eye distance) so the eyes are
    :attr:`RefineSettings.working_iod_px` apart, at most :data:`MAX_SIDE` working pixels on a side (a turned
    head brings the eyes closer in the photo, not the face)."""
    points = obs.points_px[:468]
    iod = max(interocular(points), 1.0)
    lo, hi = points.min(0) - 0.25 * iod, points.max(0) + 0.25 * iod
    scale = min(settings.working_iod_px / iod, MAX_SIDE / float(max(hi - lo)))
    origin = np.floor(lo * scale)
    size = np.ceil((hi - lo) * scale).astype(int) + 1
    blur = 0.5 / scale if scale < 1.0 else 0.0  # shrinking: blur first so the grid does not alias
    margin = int(3 * blur) + 2
    height, width = rgb.shape[:2]
    x0, y0 = (max(int(v) - margin, 0) for v in np.floor(lo))
    x1, y1 = min(int(np.ceil(hi[0])) + margin, width), min(int(np.ceil(hi[1])) + margin, height)
    crop = SRGB8_TO_LINEAR[rgb[y0:y1, x0:x1]]
    if blur:
        crop = ndimage.gaussian_filter(crop, (blur, blur, 0))
    rows, cols = np.mgrid[0:size[1], 0:size[0]].astype(np.float64)
    y = (rows + 0.5 + origin[1]) / scale - 0.5 - y0
    x = (cols + 0.5 + origin[0]) / scale - 0.5 - x0
    image = np.stack([ndimage.map_coordinates(crop[..., c], [y, x], order=1, mode="constant", cval=np.nan)
                      for c in range(3)], -1)
    return Window(origin=origin, scale=scale, image=image)


def find_edges(model: HeadModel, neutral: np.ndarray, fit: PhotoFit, obs: Observation, window: Window,
               settings: RefineSettings) -> Edges:
    """Render the fitted head (``neutral``: the person's neutral vertices (V,3) m, with the fit's expression and
    pose) over the window and match the borders of its openings to the photo's edges."""
    cx, cy = obs.camera.principal_point
    height, width = window.image.shape[:2]
    work = Camera(obs.camera.focal_px * window.scale,
                  (cx * window.scale - window.origin[0], cy * window.scale - window.origin[1]), (width, height))
    verts = (neutral + np.tensordot(fit.expression, model.expression_basis, axes=1)) @ fit.rotation.T + fit.translation
    raster = rasterize_head(model, verts, work, max_side=max(width, height) + 1)
    kinds = np.array([m.kind for m in model.materials])
    kind = np.where(raster.triangle >= 0, kinds[model.face_material[model.triangle_face[raster.triangle]]], "")
    search = max(2, int(round(settings.search * settings.working_iod_px)))
    found = [_match(model, raster, kind, window.image, np.isin(kind, OPENINGS[name]), search, settings)
             for name in settings.openings]
    if not found:
        return Edges(np.zeros((0, 3), np.int64), np.zeros((0, 3)), np.zeros((0, 2)))
    return Edges(vertex_ids=np.concatenate([f[0] for f in found]), weights=np.concatenate([f[1] for f in found]),
                 targets_px=(np.concatenate([f[2] for f in found]) + window.origin) / window.scale)


def _match(model: HeadModel, raster: HeadRaster, kind: np.ndarray, image: np.ndarray, opening: np.ndarray, search: int,
           settings: RefineSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Border samples of one opening whose edge the image confirms: vertex ids (N,3), barycentrics (N,3) and
    the edge positions (N,2) in working pixels.

    Each photo pixel is told skin or opening by the nearer of reference colours: the skin's (median of a band
    4–8 px outside the rendered opening: lips, lids) and the opening's (dark, middle and bright thirds of what
    the photo shows inside the rendered opening: iris, sclera; mouth, teeth). Along each border normal the edge
    is the skin → opening crossing nearest to the rendered border, placed between two samples where the two
    colour distances are equal. Search lines that leave the photo are dropped.
    """
    skin = kind == "skin"
    inside_photo = np.isfinite(image).all(-1)
    border = ndimage.binary_dilation(opening) & skin  # skin pixels touching the opening
    band = (ndimage.binary_dilation(opening, iterations=8) & ~ndimage.binary_dilation(opening, iterations=3) & skin
            & inside_photo)
    core = ndimage.binary_erosion(opening) & inside_photo
    empty = (np.zeros((0, 3), np.int64), np.zeros((0, 3)), np.zeros((0, 2)))
    if border.sum() < 4 or core.sum() < 6 or band.sum() < 6:
        return empty
    skin_colour = np.median(image[band], axis=0)
    inside = image[core]
    order = np.argsort(inside.sum(1))
    references = np.array([np.median(inside[part], axis=0) for part in np.array_split(order, 3)])
    distinct = np.linalg.norm(references - skin_colour, axis=1) >= settings.min_contrast
    if not distinct.any():  # the photo shows nothing unlike the skin where the head has an opening
        return empty
    references = references[distinct]
    rows, cols = np.nonzero(border)
    if len(rows) > settings.max_edges:
        keep = np.linspace(0, len(rows) - 1, settings.max_edges).round().astype(int)
        rows, cols = rows[keep], cols[keep]
    soft = ndimage.gaussian_filter(opening.astype(np.float64), 1.5)
    gy, gx = np.gradient(soft)
    normal = np.stack([gx[rows, cols], gy[rows, cols]], -1)  # x, y: from the skin into the opening
    length = np.linalg.norm(normal, axis=1)
    ok = length > 1e-6
    rows, cols, normal = rows[ok], cols[ok], normal[ok] / length[ok, None]
    # the model's border lies half a pixel from the skin pixel's centre toward the opening
    centre = np.stack([cols + 0.5, rows + 0.5], -1) + 0.5 * normal
    steps = np.arange(-search, search + 1, dtype=np.float64)
    line = centre[:, None] + steps[None, :, None] * normal[:, None]  # (N,S,2) x, y
    colour = np.stack([ndimage.map_coordinates(image[..., c], [line[..., 1] - 0.5, line[..., 0] - 0.5], order=1,
                                               mode="constant", cval=np.nan) for c in range(3)], -1)
    # > 0 where the photo shows the opening there (N,S)
    lean = np.linalg.norm(colour - skin_colour, axis=-1) - np.linalg.norm(colour[:, :, None] - references,
                                                                          axis=-1).min(-1)
    leaves = (lean[:, :-1] <= 0) & (lean[:, 1:] > 0)  # skin-coloured, then not: a crossing between two samples
    step = np.arange(len(steps) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        at = steps[step] - lean[:, :-1] / (lean[:, 1:] - lean[:, :-1])  # where the lean is 0
    nearest = np.where(leaves, np.abs(at), np.inf).argmin(1)
    pick = np.arange(len(nearest))
    accept = leaves[pick, nearest] & np.isfinite(colour).all((1, 2))
    tri = raster.triangle[rows, cols][accept]
    # the surface point under the pixel centre moves with the border: by the border's offset from the photo edge
    targets = centre[accept] + (at[pick, nearest][accept, None] - 0.5) * normal[accept]
    return model.triangles[tri], raster.bary[rows, cols][accept].astype(np.float64), targets


def fold_identity(basis: LandmarkBasis, identity: np.ndarray) -> LandmarkBasis:
    """``basis`` with ``identity`` made part of its base and no identity unknowns left (the fit holds it)."""
    k = len(identity)
    contour = basis.contour
    if contour is not None:
        contour = Contour(landmarks=contour.landmarks,
                          base=contour.base + np.tensordot(identity, contour.identity[:k], axes=1),
                          identity=contour.identity[:0], expression=contour.expression, normals=contour.normals)
    return replace(basis, base=basis.base + np.tensordot(identity, basis.identity[:k], axes=1),
                   identity=basis.identity[:0], contour=contour)


def with_edges(model: HeadModel, neutral: np.ndarray, basis: LandmarkBasis, obs: Observation, edges: Edges,
               weight: float) -> tuple[LandmarkBasis, Observation]:
    """Append the edge points (on ``neutral``, the person's neutral vertices (V,3) m) to a fixed-identity basis
    (see :func:`fold_identity`), and their targets to the photo's observation after its landmarks."""
    n = len(basis.base)
    points = Correspondence(edges.vertex_ids, edges.weights)  # surface points, like the landmarks' table
    base = points.points(neutral)
    shapes = points.basis(model.expression_basis).astype(np.float64)
    extended = replace(basis, base=np.concatenate([basis.base, base]),
                       identity=np.zeros((0, n + len(edges), 3)),
                       expression=np.concatenate([basis.expression, shapes], axis=1),
                       weights=np.concatenate([basis.weights, np.full(len(edges), weight)]))
    points = np.concatenate([obs.points_px[:n], edges.targets_px])
    depth = np.concatenate([obs.depth_px[:n], np.zeros(len(edges))])
    return extended, replace(obs, points_px=points, depth_px=depth)
