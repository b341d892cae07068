"""Refinement against the photo (analysis by synthesis): render the fitted head, match the borders of its
openings to the photo's edges, and fit again.

The landmark fit sees the face through MediaPipe's points, which scatter by a few per cent of the inter-ocular
distance. The photo itself shows where the lips part: this stage rasterises the fitted head at a working
resolution (:data:`RefineSettings.working_iod_px` between the eyes), finds the skin pixels bordering what shows
through an opening (the mouth: teeth, gums and tongue; optionally the eyes: eyeballs), and searches the photo
along each border's normal for where its colour turns from the skin's to the opening's (reference colours taken
from the photo itself). Every edge found becomes one more observation for :func:`likeness.fit.fit_landmarks`: the
surface point under the border pixel (triangle and barycentric weights) should project onto the edge. Identity
stays as the landmark fit found it (it is shared by all photos of the job); each photo's pose and expression are
refined, a few rounds of render, match, fit. Optional per job (``ReconstructRequest.refine``); the figures it
moves are in docs/quality.md.

Units: pixels of the photo (x right, y down); the private helpers work in pixels of the working raster.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from .camera import Camera
from .contour import Contour
from .fit import FitResult, FitSettings, LandmarkBasis, Observation, PhotoFit, fit_landmarks
from .headmodel import HeadModel
from .landmarks import interocular
from .light import SRGB8_TO_LINEAR
from .views import HeadRaster, rasterize_head

#: Material kinds seen through the eye openings and through the mouth opening.
OPENINGS = {"eyes": ("eye",), "mouth": ("mouth", "teeth")}


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
    kept. Returns a new :class:`FitResult` (``result`` is untouched); a photo where no edge is found keeps its
    landmark fit."""
    fixed = fold_identity(basis, result.identity)
    step = replace(fit_settings, iterations=settings.iterations, pose_only_iterations=0)
    photos = []
    for obs, rgb, fit in zip(observations, images, result.photos):
        current = PhotoFit(fit.rotation.copy(), fit.translation.copy(), fit.expression.copy(),
                           fit.rmse_px, fit.rmse_iod, fit.gaze, fit.evidence)
        linear = SRGB8_TO_LINEAR[rgb]
        for _ in range(settings.rounds):
            edges = find_edges(model, result.identity, current, obs, linear, settings)
            if not len(edges):
                break
            extended, observed = with_edges(model, result.identity, fixed, obs, edges, settings.edge_weight)
            refit = fit_landmarks(extended, [observed], step, start=[current]).photos[0]
            # the landmark residuals of the landmark fit stay the photo's figures of fit
            current = replace(refit, rmse_px=fit.rmse_px, rmse_iod=fit.rmse_iod, gaze=fit.gaze,
                              evidence=fit.evidence)
        photos.append(current)
    return FitResult(identity=result.identity, photos=photos, iterations=result.iterations)


def find_edges(model: HeadModel, identity: np.ndarray, fit: PhotoFit, obs: Observation, linear: np.ndarray,
               settings: RefineSettings) -> Edges:
    """Render the fitted head over the face and match the borders of its openings to the photo's edges."""
    iod = max(interocular(obs.points_px), 1.0)
    scale = settings.working_iod_px / iod
    lo = obs.points_px[:468].min(0) - 0.25 * iod
    hi = obs.points_px[:468].max(0) + 0.25 * iod
    origin = np.floor(lo * scale)
    size = np.ceil((hi - lo) * scale).astype(int) + 1
    cx, cy = obs.camera.principal_point
    work = Camera(obs.camera.focal_px * scale, (cx * scale - origin[0], cy * scale - origin[1]),
                  (int(size[0]), int(size[1])))
    verts = model.vertices(identity, fit.expression).astype(np.float64) @ fit.rotation.T + fit.translation
    raster = rasterize_head(model, verts, work, max_side=int(size.max()) + 1)
    kinds = np.array([m.kind for m in model.materials])
    kind = np.where(raster.triangle >= 0, kinds[model.face_material[model.triangle_face[raster.triangle]]], "")
    image = _resample(linear, origin, scale, raster.triangle.shape)
    search = max(2, int(round(settings.search * settings.working_iod_px)))
    found = [_match(model, raster, kind, image, np.isin(kind, OPENINGS[name]), search, settings)
             for name in settings.openings]
    ids = np.concatenate([f[0] for f in found])
    bary = np.concatenate([f[1] for f in found])
    targets = (np.concatenate([f[2] for f in found]) + origin) / scale
    return Edges(vertex_ids=ids, weights=bary, targets_px=targets)


def _match(model: HeadModel, raster: HeadRaster, kind: np.ndarray, image: np.ndarray, opening: np.ndarray, search: int,
           settings: RefineSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Border samples of one opening whose edge the image confirms: vertex ids (N,3), barycentrics (N,3) and
    the edge positions (N,2) in working pixels.

    Each photo pixel is told skin or opening by the nearer of reference colours: the skin's (median of a band
    3–8 px outside the rendered opening: lips, lids) and the opening's (dark, middle and bright thirds of what
    the photo shows inside the rendered opening: iris, sclera; mouth, teeth). Along each border normal the edge
    is the skin → opening crossing nearest to the rendered border.
    """
    skin = kind == "skin"
    border = ndimage.binary_dilation(opening) & skin  # skin pixels touching the opening
    band = ndimage.binary_dilation(opening, iterations=8) & ~ndimage.binary_dilation(opening, iterations=3) & skin
    core = ndimage.binary_erosion(opening)
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
                                               mode="nearest") for c in range(3)], -1)
    to_skin = np.linalg.norm(colour - skin_colour, axis=-1)
    to_opening = np.linalg.norm(colour[:, :, None] - references, axis=-1).min(-1)
    away = to_opening < to_skin  # (N,S): the photo shows the opening there
    leaves = ~away[:, :-1] & away[:, 1:]  # skin-coloured, then not: a crossing between steps
    mids = 0.5 * (steps[1:] + steps[:-1])
    nearest = np.where(leaves, np.abs(mids), np.inf).argmin(1)
    accept = leaves[np.arange(len(nearest)), nearest]
    tri = raster.triangle[rows, cols][accept]
    # the surface point under the pixel centre moves with the border: by the border's offset from the photo edge
    targets = centre[accept] + (mids[nearest[accept], None] - 0.5) * normal[accept]
    return model.triangles[tri], raster.bary[rows, cols][accept].astype(np.float64), targets


def _resample(linear: np.ndarray, origin: np.ndarray, scale: float, shape: tuple[int, int]) -> np.ndarray:
    """The photo (H,W,3 linear) on the working grid: pixel (r, c) there is photo ((c+0.5+ox)/s, (r+0.5+oy)/s)."""
    if scale < 1.0:  # shrinking: blur first so the grid does not alias
        linear = ndimage.gaussian_filter(linear, (0.5 / scale, 0.5 / scale, 0))
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    y = (rows + 0.5 + origin[1]) / scale - 0.5
    x = (cols + 0.5 + origin[0]) / scale - 0.5
    return np.stack([ndimage.map_coordinates(linear[..., c], [y, x], order=1, mode="nearest") for c in range(3)], -1)


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


def with_edges(model: HeadModel, identity: np.ndarray, basis: LandmarkBasis, obs: Observation, edges: Edges,
               weight: float) -> tuple[LandmarkBasis, Observation]:
    """Append the edge points (with ``identity`` made part of them) to a fixed-identity basis (see
    :func:`fold_identity`), and their targets to the photo's observation after its landmarks."""
    n = len(basis.base)
    k = len(identity)
    rest = model.neutral[edges.vertex_ids].astype(np.float64)  # (N,3,3)
    rest += np.tensordot(identity, model.identity_basis[:k][:, edges.vertex_ids], axes=1)
    base = np.einsum("nk,nkd->nd", edges.weights, rest)
    shapes = np.einsum("nk,enkd->end", edges.weights, model.expression_basis[:, edges.vertex_ids])
    extended = replace(basis, base=np.concatenate([basis.base, base]),
                       identity=np.zeros((0, n + len(edges), 3)),
                       expression=np.concatenate([basis.expression, shapes], axis=1),
                       weights=np.concatenate([basis.weights, np.full(len(edges), weight)]))
    points = np.concatenate([obs.points_px[:n], edges.targets_px])
    depth = np.concatenate([obs.depth_px[:n], np.zeros(len(edges))])
    return extended, replace(obs, points_px=points, depth_px=depth)
