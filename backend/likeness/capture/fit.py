"""Fit a head model to 2D face landmarks in one or more photos of the same person.

Unknowns: one identity (shared by all photos; coefficients ~N(0,1)), and per photo a head pose (rotation,
translation in metres, OpenGL camera frame) and expression weights in [0, 1]. The cameras' focal lengths are
known (EXIF or default). The objective is the landmark reprojection error, measured in units of each photo's
inter-ocular distance so photos of any resolution weigh the same, plus Gaussian priors on identity and
expression. It is minimised by damped Gauss–Newton steps, each a small bounded linear least-squares problem
(so expression weights stay in [0, 1] exactly).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from ..model.camera import Camera
from .contour import Contour
from ..model.correspondence import FACE_OVAL, Correspondence
from ..model.geometry import axis_angle, rodrigues, similarity_transform
from ..model.headmodel import HeadModel
from .landmarks import interocular


# what every fit reads, before the expression evidence's own sources (manifest ``fit.evidence``, track ``evidence``)
BASE_EVIDENCE = ("landmarks", "iris_gaze")


@dataclass(frozen=True)
class FitSettings:
    """Weights of the fit. Residuals are in units of ``noise`` × inter-ocular distance."""

    identity_count: int = 60
    noise: float = 0.02  # landmark noise as a fraction of the inter-ocular distance
    identity_prior: float = 1.0  # weight of Σ identity²
    expression_prior: float = 0.3  # weight of Σ expression²
    expression_sparsity: float = 2.0  # weight of Σ expression (weights are ≥ 0, so this is an L1 prior)
    evidence_weight: float = 400.0  # weight of Σ (expression − learned score)² where scores exist (tune_fit.py)
    encoder_weight: float = 1600.0  # the same weight when the evidence comes from the expression encoder (tune_fit.py)
    identity_encoder_weight: float = 100.0  # the encoder's weight while the identity is fitted (then held)
    pose_prior: float = 3000.0  # weight of |log(R_prior Rᵀ)|² (radians) where an observation has a rotation prior (the encoder's)
    # the prior's weight on the turn about the camera's horizontal axis (the head's pitch, nodding), where the
    # landmarks are least sure of the rotation; pose_prior weighs the turns about the other two axes (tune_fit.py:
    # 3000 / 10000 / 30000 / 100000 gave pitch 2.13 / 1.94 / 1.87 / 1.91°, rotation 2.80 / 2.65 / 2.64 / 2.70°)
    pose_prior_pitch: float = 10000.0
    # how far the encoder may disagree with the identity stage's reading of a shape before it is trusted less
    # (0: always trusted): its evidence is pulled towards that reading by 1 / (1 + (Δ/trust)²) (tune_fit.py)
    encoder_trust: float = 0.15
    # the same gate on the side of each left/right pair (half of w_L − w_R) while encoder_trust gates the pair's
    # mean; wider than encoder_trust, as the landmarks read sides worse than the encoder. 0: the encoder's side as it
    # is; < 0: each shape gated alone with encoder_trust (tune_fit.py, all 150: side 73 % each alone, 79 % at 0.15,
    # 82 % at 0, 0.2, 0.3 and 0.5; dev photos unchanged)
    encoder_side_trust: float = 0.3
    # > 0: the identity stage weighs MediaPipe's scores at this weight (as the fit without the encoder does)
    # instead of the encoder at identity_encoder_weight (tune_fit.py, dev_photos.py)
    identity_scores_weight: float = 400.0
    encoder_gaze_share: float = 0.75  # the encoder's share of the eyeLook* weights beside the irises' gaze (tune_fit.py)
    symmetry: float = 1.0  # weight of Σ (w_L − w_R)² over left/right pairs: symmetric unless the photo says so
    antagonism: float = 4.0  # weight of Σ (w_a + w_b)² over opposing pairs (jawLeft/jawRight, ...)
    antagonists: tuple[tuple[str, str], ...] = (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight"),
                                               ("eyeBlink_L", "eyeWide_L"), ("eyeBlink_R", "eyeWide_R"))
    # shapes the landmarks cannot see (ICT's eyeLook* only move the lids): taken from the evidence (iris gaze,
    # learned scores) as they are, 0 without evidence
    evidence_only: tuple[str, ...] = tuple(f"eyeLook{d}_{s}" for d in ("Down", "In", "Out", "Up") for s in "LR")
    contour_weight: float = 0.35  # face-oval landmarks lie on a silhouette that moves: trust them less
    sliding_contour: bool = True  # match the jaw/cheek outline to the current silhouette (likeness.capture.contour)
    iterations: int = 12
    pose_only_iterations: int = 4
    damping: float = 1e-2


@dataclass(frozen=True)
class LandmarkBasis:
    """The head model restricted to MediaPipe's 468 landmarks (metres, head frame)."""

    base: np.ndarray  # (L,3)
    identity: np.ndarray  # (K,L,3)
    expression: np.ndarray  # (E,L,3)
    weights: np.ndarray  # (L,) per-landmark confidence
    names: tuple[str, ...]  # expression names
    contour: Contour | None = None  # sliding silhouette points for the jaw and cheek outline

    @classmethod
    def build(cls, model: HeadModel, corr: Correspondence, settings: FitSettings) -> "LandmarkBasis":
        weights = np.ones(len(corr.vertex_ids))
        weights[list(FACE_OVAL)] = settings.contour_weight
        identity = corr.basis(model.identity_basis[:settings.identity_count])
        # the bases in C order: the fit's products read them row by row
        return cls(base=corr.points(model.neutral.astype(np.float64)),
                   identity=np.ascontiguousarray(identity, np.float64),
                   expression=np.ascontiguousarray(corr.basis(model.expression_basis), np.float64),
                   weights=weights, names=model.expression_names,
                   contour=Contour.build(model, corr, settings.identity_count) if settings.sliding_contour else None)

    def points(self, identity: np.ndarray, expression: np.ndarray) -> np.ndarray:
        return (self.base + np.tensordot(identity, self.identity, axes=1)
                + np.tensordot(expression, self.expression, axes=1))


def fixed_identity(basis: LandmarkBasis, identity: np.ndarray) -> LandmarkBasis:
    """The landmark basis with ``identity`` baked into its base points and no identity modes left, so
    :func:`fit_landmarks` solves only pose and expression."""
    base = basis.base + np.tensordot(identity, basis.identity, axes=1)
    contour = basis.contour
    if contour is not None:
        contour = replace(contour, base=contour.base + np.tensordot(identity, contour.identity, axes=1),
                          identity=np.zeros((0, *contour.base.shape)))
    return replace(basis, base=base, identity=np.zeros((0, *base.shape)), contour=contour)


def side_pairs(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(left indices, right indices) of the ``*_L`` / ``*_R`` shape pairs in ``names``."""
    index = {n: i for i, n in enumerate(names)}
    pairs = [(i, index[n[:-1] + "R"]) for n, i in index.items() if n.endswith("_L") and n[:-1] + "R" in index]
    return np.array([p[0] for p in pairs], int), np.array([p[1] for p in pairs], int)


def pair_prior(names: tuple[str, ...], settings: FitSettings) -> np.ndarray:
    """(E,E) quadratic prior on one photo's expression weights from the pair terms of ``settings``.

    Left/right pairs add ``symmetry · (w_L − w_R)²``; antagonists add ``antagonism · (w_a + w_b)²``, which costs
    using both at once more than either alone.
    """
    index = {n: i for i, n in enumerate(names)}
    prior = np.zeros((len(names), len(names)))
    terms = [(int(i), int(j), -1.0, settings.symmetry) for i, j in zip(*side_pairs(names))]
    terms += [(index[a], index[b], 1.0, settings.antagonism) for a, b in settings.antagonists
              if a in index and b in index]
    for i, j, sign, weight in terms:
        prior[i, i] += weight
        prior[j, j] += weight
        prior[i, j] += sign * weight
        prior[j, i] += sign * weight
    return prior


@dataclass(frozen=True)
class Observation:
    """What one photo tells the fit: landmarks (≥468,2) px, MediaPipe's relative depth (≥468,) px, the camera,
    and optionally learned expression scores (E,) in [0, 1], NaN where there is none."""

    points_px: np.ndarray
    depth_px: np.ndarray
    camera: Camera
    evidence: np.ndarray | None = None
    sources: tuple[str, ...] = ()  # what the evidence comes from (the manifest's fit.evidence names)
    rotation_prior: np.ndarray | None = None  # (3,3) head rotation a learned model expects, see pose_prior
    scores_evidence: np.ndarray | None = None  # MediaPipe's scores as weights, where ``evidence`` is an encoder's


@dataclass
class PhotoFit:
    """Result for one photo."""

    rotation: np.ndarray  # (3,3) head frame → camera frame
    translation: np.ndarray  # (3,) metres
    expression: np.ndarray  # (E,) in [0, 1]
    rmse_px: float = 0.0
    rmse_iod: float = 0.0
    gaze: dict[str, tuple[float, float]] | None = None  # per eye (yaw, pitch) degrees, see likeness.capture.gaze
    evidence: tuple[str, ...] = ("landmarks",)  # what the expression weights rest on


@dataclass
class FitResult:
    identity: np.ndarray  # (K,)
    photos: list[PhotoFit]
    iterations: int


def first_stage(observations: list[Observation], settings: FitSettings
                ) -> tuple[list[Observation], FitSettings]:
    """What the encoder path's first fit reads (the identity stage of a photo, a video frame's plain fit): MediaPipe's
    scores at ``identity_scores_weight`` where that is > 0 (no scores: the landmarks alone), else the encoder's
    evidence at ``identity_encoder_weight``."""
    if settings.identity_scores_weight > 0:
        return ([replace(o, evidence=o.scores_evidence) for o in observations],
                replace(settings, evidence_weight=settings.identity_scores_weight))
    return observations, replace(settings, evidence_weight=settings.identity_encoder_weight)


def _gate(encoder: np.ndarray, reading: np.ndarray, trust: float) -> np.ndarray:
    """``reading + g·(encoder − reading)``, g = 1 / (1 + ((encoder − reading) / trust)²); trust 0: the encoder."""
    if trust <= 0:
        return encoder
    delta = encoder - reading
    return reading + delta / (1.0 + (delta / trust) ** 2)


def trusted(obs: Observation, landmark_reading: np.ndarray, trust: float,
            pairs: tuple[np.ndarray, np.ndarray] | None = None, side_trust: float = -1.0) -> Observation:
    """The observation with its (encoder's) evidence pulled towards ``landmark_reading`` (E,) where they disagree:
    weight ``landmark + g·(encoder − landmark)``, g = 1 / (1 + ((encoder − landmark) / trust)²).

    With ``pairs`` (left indices, right indices) and ``side_trust`` ≥ 0, each pair with evidence on both sides has
    its mean gated with ``trust`` and its half-difference (the side) with ``side_trust`` (0: the encoder's side as it
    is)."""
    gated = np.array(_gate(obs.evidence, landmark_reading, trust))
    if pairs is not None and side_trust >= 0:
        both = ~np.isnan(obs.evidence[pairs[0]]) & ~np.isnan(obs.evidence[pairs[1]])  # else each alone
        left, right = pairs[0][both], pairs[1][both]
        mean = _gate((obs.evidence[left] + obs.evidence[right]) / 2,
                     (landmark_reading[left] + landmark_reading[right]) / 2, trust)
        side = _gate((obs.evidence[left] - obs.evidence[right]) / 2,
                     (landmark_reading[left] - landmark_reading[right]) / 2, side_trust)
        gated[left], gated[right] = mean + side, mean - side
    return replace(obs, evidence=np.where(np.isnan(obs.evidence), np.nan, gated))


def initial_pose(basis: LandmarkBasis, points_px: np.ndarray, depth_px: np.ndarray,
                 camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Pose from a similarity fit of the mean face to MediaPipe's 3D landmarks (weak perspective)."""
    n = len(basis.base)
    dst = np.stack([points_px[:n, 0], -points_px[:n, 1], -depth_px[:n]], -1)
    scale, rot, offset = similarity_transform(basis.base, dst)
    distance = camera.focal_px / scale
    cx, cy = camera.principal_point
    origin_px = np.array([offset[0], -offset[1]])
    trans = np.array([(origin_px[0] - cx) * distance / camera.focal_px,
                      -(origin_px[1] - cy) * distance / camera.focal_px, -distance])
    return rot, trans


def fit_landmarks(basis: LandmarkBasis, observations: list[Observation],
                  settings: FitSettings = FitSettings(), start: list[PhotoFit] | None = None) -> FitResult:
    """Fit identity, per-photo pose and expression to landmarks (and learned expression scores where given).

    ``start`` warm-starts each photo's pose and expression (a video tracker passes the previous frame's fit);
    without it the pose comes from :func:`initial_pose` and the expression from zero.

    Unknowns are ordered
    identity (K), then per photo rotation (3), translation (3), expression (E). Each step accumulates the
    normal equations photo by photo, so memory grows with (K + 6n + En)², not with the landmark count.
    """
    n_lm = len(basis.base)
    k, e, n = basis.identity.shape[0], basis.expression.shape[0], len(observations)
    per = 6 + e
    cols = k + n * per
    identity = np.zeros(k)
    fits = ([PhotoFit(f.rotation.copy(), f.translation.copy(), f.expression.copy()) for f in start] if start else
            [PhotoFit(*initial_pose(basis, o.points_px, o.depth_px, o.camera), np.zeros(e)) for o in observations])
    targets = [o.points_px[:n_lm] for o in observations]
    cams = [o.camera for o in observations]
    evidence = np.concatenate([np.full(e, np.nan) if o.evidence is None else o.evidence for o in observations])
    only = np.tile(np.isin(basis.names, settings.evidence_only), n)
    for i, fit in enumerate(fits):  # evidence-only shapes are set once and stay fixed
        fixed = only[i * e:(i + 1) * e]
        fit.expression[fixed] = np.clip(np.nan_to_num(evidence[i * e:(i + 1) * e][fixed]), 0.0, 1.0)
    has_evidence = ~np.isnan(evidence) & ~only
    pairs = pair_prior(basis.names, settings)
    jaw, close = (basis.names.index(n) if n in basis.names else None for n in ("jawOpen", "mouthClose"))
    scales = [1.0 / (settings.noise * max(interocular(t), 1.0)) for t in targets]
    w = np.repeat(basis.weights, 2)[:, None]
    expression_cols = np.concatenate([k + i * per + 6 + np.arange(e) for i in range(n)])

    it = 0
    for it in range(settings.iterations):
        pose_only = it < settings.pose_only_iterations
        ata = np.zeros((cols, cols))
        atb = np.zeros(cols)
        for i, (fit, cam, target, s) in enumerate(zip(fits, cams, targets, scales)):
            jac, r = _photo_jacobian(basis, identity, fit, cam, target, s)
            jac, r = jac * w, r * w[:, 0]
            block, rhs = jac.T @ jac, jac.T @ r
            own = slice(k + i * per, k + (i + 1) * per)  # this photo's columns; the identity's are [:k]
            ata[:k, :k] += block[:k, :k]
            ata[:k, own] += block[:k, k:]
            ata[own, :k] += block[k:, :k]
            ata[own, own] += block[k:, k:]
            atb[:k] -= rhs[:k]
            atb[own] -= rhs[k:]
        # Gaussian priors (identity, expression), L1 sparsity on expression (weights ≥ 0), damping
        diag = np.full(cols, settings.damping)
        diag[:k] += settings.identity_prior
        atb[:k] -= settings.identity_prior * identity
        diag[expression_cols] += settings.expression_prior
        current = np.concatenate([f.expression for f in fits])
        for i, (fit, obs) in enumerate(zip(fits, observations)):
            block = k + i * per + 6 + np.arange(e)
            ata[np.ix_(block, block)] += pairs
            atb[block] -= pairs @ fit.expression
            if obs.rotation_prior is not None:  # pull R toward the prior: R ← exp(ω) R, ω about the camera's axes
                rows = k + i * per + np.arange(3)
                prior = np.array([settings.pose_prior_pitch, settings.pose_prior, settings.pose_prior])
                diag[rows] += prior
                atb[rows] += prior * axis_angle(obs.rotation_prior @ fit.rotation.T)
        atb[expression_cols] -= settings.expression_prior * current + settings.expression_sparsity / 2
        scored = expression_cols[has_evidence]
        diag[scored] += settings.evidence_weight
        atb[scored] -= settings.evidence_weight * (current[has_evidence] - evidence[has_evidence])
        ata[np.diag_indices(cols)] += diag

        lower, upper = np.full(cols, -np.inf), np.full(cols, np.inf)
        lower[:k], upper[:k] = -4.0 - identity, 4.0 - identity
        lower[expression_cols], upper[expression_cols] = -current, 1.0 - current
        free = np.ones(cols, bool)
        free[expression_cols[only]] = False
        if pose_only:
            free[:k] = free[expression_cols] = False
        sol = np.zeros(cols)
        sol[free] = bounded_solve(ata[np.ix_(free, free)], atb[free], lower[free], upper[free])
        identity = identity + sol[:k]
        for i, fit in enumerate(fits):
            off = k + i * per
            fit.rotation = rodrigues(sol[off:off + 3]) @ fit.rotation
            fit.translation = fit.translation + sol[off + 3:off + 6]
            fit.expression = np.clip(fit.expression + sol[off + 6:off + per], 0.0, 1.0)
            if jaw is not None and close is not None:  # mouthClose is a corrective of jawOpen, never alone
                fit.expression[close] = min(fit.expression[close], fit.expression[jaw])
        if not pose_only and np.abs(sol).max() < 1e-4:
            break

    for fit, cam, target in zip(fits, cams, targets):
        x, _ = _landmark_rows(basis, identity, fit, cam, target)
        px, _ = cam.project(x @ fit.rotation.T + fit.translation)
        err = np.linalg.norm(px - target, axis=1)
        fit.rmse_px = float(np.sqrt((err ** 2).mean()))
        fit.rmse_iod = fit.rmse_px / max(interocular(target), 1.0)
    return FitResult(identity=identity, photos=fits, iterations=it + 1)


def _photo_jacobian(basis: LandmarkBasis, identity: np.ndarray, fit: PhotoFit, cam: Camera,
                    target: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Scaled residuals (2L,) of one photo and their Jacobian (2L, K+6+E): identity, ω, t, expression."""
    k, e = basis.identity.shape[0], basis.expression.shape[0]
    x, moved = _landmark_rows(basis, identity, fit, cam, target)
    rx = x @ fit.rotation.T
    q = rx + fit.translation
    px, _ = cam.project(q)
    r = ((px - target) * scale).ravel()
    jp = cam.projection_jacobian(q) * scale  # (L,2,3)
    jac = np.empty((len(r), k + 6 + e))
    # rotation update R <- exp(ω) R:  dq/dω = -[R x]_×
    skew = np.zeros((len(x), 3, 3))
    skew[:, 0, 1], skew[:, 0, 2] = rx[:, 2], -rx[:, 1]
    skew[:, 1, 0], skew[:, 1, 2] = -rx[:, 2], rx[:, 0]
    skew[:, 2, 0], skew[:, 2, 1] = rx[:, 1], -rx[:, 0]
    jac[:, k:k + 3] = np.matmul(jp, skew).reshape(-1, 3)
    jac[:, k + 3:k + 6] = jp.reshape(-1, 3)
    jr = jp @ fit.rotation  # (L,2,3)
    rows, id_moved, ex_moved = moved
    for columns, modes, at_moved in ((slice(0, k), basis.identity, id_moved),  # k = 0: identity held fixed
                                     (slice(k + 6, k + 6 + e), basis.expression, ex_moved)):
        # (L,2,3) @ (L,3,N): one small product per landmark (several times faster than the same einsum)
        block = np.matmul(jr, modes.transpose(1, 2, 0))
        if len(rows):  # the sliding outline points' own modes
            block[rows] = np.matmul(jr[rows], at_moved.transpose(1, 2, 0))
        jac[:, columns] = block.reshape(len(r), -1)
    return jac, r


def _landmark_rows(basis: LandmarkBasis, identity: np.ndarray, fit: PhotoFit, cam: Camera,
                   target: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Model landmark positions (L,3), with the sliding outline points moved to the current silhouette, and
    those points: their landmark indices (M,) and identity and expression modes there (K,M,3), (E,M,3)."""
    x = basis.points(identity, fit.expression)
    contour = basis.contour
    none = (np.zeros(0, np.int64), basis.identity[:, :0], basis.expression[:, :0])
    if contour is None:
        return x, none
    pick = contour.choose(identity, fit.expression, fit.rotation, fit.translation, cam, target[contour.landmarks])
    moved = pick >= 0
    if not moved.any():
        return x, none
    rows, which, cand = contour.landmarks[moved], np.flatnonzero(moved), pick[moved]
    id_moved, ex_moved = contour.identity[:, which, cand], contour.expression[:, which, cand]
    x[rows] = (contour.base[which, cand] + np.tensordot(identity, id_moved, axes=1)
               + np.tensordot(fit.expression, ex_moved, axes=1))
    return x, (rows, id_moved, ex_moved)


def bounded_solve(ata: np.ndarray, atb: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                  rounds: int = 8) -> np.ndarray:
    """Solve the normal equations ``ata x = atb`` with ``lower ≤ x ≤ upper``, clipping violators to their bound
    and re-solving for the rest.

    An active-set approximation that only ever adds constraints: exact enough for damped Gauss–Newton steps
    and far faster than a general bounded solver on these small dense systems.
    """
    x = np.zeros(len(atb))
    free = np.ones(len(atb), bool)
    for _ in range(rounds):
        rhs = atb[free] - ata[np.ix_(free, ~free)] @ x[~free]
        x[free] = cho_solve(cho_factor(ata[np.ix_(free, free)]), rhs)  # damped normal equations: SPD
        low, high = free & (x < lower), free & (x > upper)
        if not (low.any() or high.any()):
            break
        x[low], x[high] = lower[low], upper[high]
        free &= ~(low | high)
    return np.clip(x, lower, upper)
