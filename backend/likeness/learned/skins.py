"""Procedural skins for training renders: per-vertex albedo (linear RGB) on the head model's topology.

A skin is drawn from a seed: a tone, low-frequency colour variation (cheeks, nose, forehead), lips, brows,
optional make-up (lipstick, eyeliner, eye shadow, blush), stubble or beard, freckles and moles, hair on the scalp,
iris colour. Regions come from the model's own 68 landmark vertices on the neutral head (front view, cm), so the
same code dresses any identity and expression of the model. No photo enters a procedural skin; the fifth training
set replaces half of the faces' skin with a reconstructed photo's albedo (``paint(photo=...)``,
:mod:`likeness.learned.photoskin`), re-toned per skin.

Skins are split into *families* by their seed's parity (:func:`skin_seeds`): training uses one family, the
held-out benchmark the other, and each family also draws its tones from its own half of the palette's
interpolation points, so no benchmark skin is a training skin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..model.headmodel import HeadModel

#: Linear-RGB skin albedos from very light to very dark (measured skin reflectances are roughly in this range).
TONES = np.array([[0.78, 0.58, 0.48], [0.70, 0.50, 0.40], [0.62, 0.42, 0.33], [0.52, 0.34, 0.24],
                  [0.40, 0.25, 0.16], [0.28, 0.16, 0.10], [0.18, 0.10, 0.06], [0.11, 0.06, 0.04]])
HAIR = np.array([[0.015, 0.012, 0.010], [0.05, 0.03, 0.018], [0.12, 0.07, 0.035], [0.35, 0.24, 0.12],
                 [0.55, 0.45, 0.30], [0.25, 0.08, 0.03], [0.30, 0.30, 0.30]])
IRIS = np.array([[0.06, 0.03, 0.015], [0.12, 0.07, 0.03], [0.10, 0.16, 0.28], [0.12, 0.18, 0.10],
                 [0.18, 0.18, 0.18], [0.20, 0.12, 0.05]])
#: The share of skins whose face takes a photo's albedo when :meth:`SkinPainter.paint` is given one.
PHOTO_SHARE = 0.5


@dataclass(frozen=True)
class Skin:
    """Per-vertex albedo (V,3) in linear RGB, and a per-vertex gloss (V,) in [0, 1] for the specular term."""

    albedo: np.ndarray
    gloss: np.ndarray


def skin_seeds(count: int, family: str, start: int = 0) -> list[int]:
    """``count`` skin seeds of ``family`` ("train": even seeds, "heldout": odd seeds)."""
    offset = {"train": 0, "heldout": 1}[family]
    return [2 * (start + i) + offset for i in range(count)]


class SkinPainter:
    """Precomputes the model's regions once; :meth:`paint` then draws a skin per seed in a few milliseconds."""

    def __init__(self, model: HeadModel) -> None:
        self.model = model
        v = model.neutral.astype(np.float64) * 100.0  # cm, head frame
        self.v = v
        lm = v[model.landmarks_68]
        self.lm = lm
        n = model.vertex_count
        self.region = np.zeros(n, np.int32)  # 0 skin, 1 mouth socket, 2 eye socket, 3 gums, 4 teeth, 5 eyeball
        # ranges follow ICT's region table order: face, head, mouth socket, eye sockets, gums, teeth, eyeballs
        face_end = model.face_vertex_count
        self.front = np.zeros(n, bool)
        self.front[:face_end] = True
        self.eyeball = model.eyeball_mask()
        self.iris = np.zeros(n, bool)
        self.iris_radial = np.zeros(n)  # cm from the eyeball's axis, on the eyeballs
        for side, (start, stop) in model.eyeball_vertices.items():
            ball = v[start:stop]
            centre = ball.mean(0)
            off = ball - centre
            radial = np.hypot(off[:, 0], off[:, 1])
            self.iris[start:stop] = (off[:, 2] > 0) & (radial < 0.62)
            self.iris_radial[start:stop] = radial
            self.region[start:stop] = 5
        self.pupil = np.zeros(n, bool)
        for side, (start, stop) in model.eyeball_vertices.items():
            off = v[start:stop] - v[start:stop].mean(0)
            self.pupil[start:stop] = (off[:, 2] > 0) & (np.hypot(off[:, 0], off[:, 1]) < 0.22)
        # interior parts by material: vertices of polygons whose material is mouth/teeth
        kinds = np.array([m.kind for m in model.materials])
        poly_kind = kinds[model.face_material]
        for kind, code in (("mouth", 3), ("teeth", 4)):
            ids = np.unique(model.faces[poly_kind == kind])
            self.region[ids[ids >= 0]] = code
        # sockets: the head material's vertices behind the face surface (ICT: mouth and eye sockets)
        skin_ids = np.unique(model.faces[(poly_kind == "skin")])
        skin_ids = skin_ids[skin_ids >= face_end]
        lip_centre = lm[48:68].mean(0)
        inside = skin_ids[(v[skin_ids, 2] < lip_centre[2] - 0.3) & (np.abs(v[skin_ids, 0]) < 4.0)
                          & (np.abs(v[skin_ids, 1] - lip_centre[1]) < 3.0)]
        self.region[inside] = 1
        for eye in (lm[36:42], lm[42:48]):
            c = eye.mean(0)
            near = skin_ids[(np.linalg.norm(v[skin_ids] - c, axis=1) < 2.2) & (v[skin_ids, 2] < c[2] + 0.2)]
            self.region[near] = 2
        xy = v[:, :2]
        self.lip = _inside(xy, lm[48:60]) & self.front & (v[:, 2] > lip_centre[2] - 1.5)
        self.lip_soft = _soft_distance(xy, lm[48:60], closed=True)
        self.brow = np.minimum(_polyline_distance(xy, lm[17:22]), _polyline_distance(xy, lm[22:27]))
        self.upper_lid = np.minimum(_polyline_distance(xy, lm[[36, 37, 38, 39]]),
                                    _polyline_distance(xy, lm[[42, 43, 44, 45]]))
        self.lower_lid = np.minimum(_polyline_distance(xy, lm[[39, 40, 41, 36]]),
                                    _polyline_distance(xy, lm[[45, 46, 47, 42]]))
        brow_y = np.interp(np.abs(xy[:, 0]), lm[22:27, 0], lm[22:27, 1])  # the brow line's height at |x|
        self.brow_above = xy[:, 1] > brow_y
        self.brow_span = (np.abs(xy[:, 0]) > lm[22, 0] - 0.3) & (np.abs(xy[:, 0]) < lm[26, 0] + 0.2)
        self.eye_dist = np.minimum(np.linalg.norm(xy - lm[36:42, :2].mean(0), axis=1),
                                   np.linalg.norm(xy - lm[42:48, :2].mean(0), axis=1))
        nose_y, chin_y = lm[33, 1], lm[8, 1]
        self.beard_zone = self.front & (xy[:, 1] < nose_y - 0.3) & (v[:, 2] > lip_centre[2] - 8.0)
        self.moustache = self.front & (xy[:, 1] < nose_y) & (xy[:, 1] > lm[51, 1]) & (np.abs(xy[:, 0]) < 3.2)
        self.cheek = np.minimum(np.linalg.norm(xy - (lm[2, :2] + lm[31, :2]) / 2, axis=1),
                                np.linalg.norm(xy - (lm[14, :2] + lm[35, :2]) / 2, axis=1))
        self.nose_dist = np.linalg.norm(xy - lm[30, :2], axis=1)
        brow_top = lm[17:27, 1].max()
        self.scalp = (~self.front) & (self.region == 0) & ((v[:, 1] > brow_top + 3.0) | (v[:, 2] < -2.0)) \
            & (v[:, 1] > chin_y + 6.0)
        self.chin_y = chin_y
        faces = model.faces
        corners = np.stack([faces, np.where(faces[:, 3:] >= 0, np.roll(faces, -1, axis=1),
                                            np.column_stack([np.roll(faces[:, :3], -1, axis=1), faces[:, :1]]))], -1)
        edges = corners.reshape(-1, 2)
        edges = np.sort(edges[(edges >= 0).all(1)], axis=1)
        edges = np.unique(edges, axis=0)
        # how far (cm) each face-region vertex lies inside the region's outer edge, where a photo's face meets the
        # painted head (the region's edges around the eyes and the mouth, 4 cm or less from their centres, border
        # the sockets instead)
        rim = np.unique(edges[self.front[edges].sum(1) == 1])
        openings = np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[48:68].mean(0)])
        rim = rim[self.front[rim] & (np.linalg.norm(v[rim, None] - openings, axis=2).min(1) > 4.0)]
        self.face_inset = np.zeros(n)
        if len(rim):
            self.face_inset[self.front] = cKDTree(v[rim]).query(v[self.front])[0]
        self.edges = edges[self.front[edges].all(1)]
        self._inset_for, self._inset = None, self.face_inset

    def paint(self, seed: int, family: str = "train", detail: bool = False, eyes: int = 0,
              photo: np.ndarray | None = None) -> Skin:
        """One skin. ``family`` picks the half of each palette's interpolation points (see the module doc);
        ``detail`` adds dense brows and lash lines to most skins (the second training set; benchmarks keep the
        skins they were first scored on); ``eyes`` paints the eyes as photos show them (:meth:`_photo_eyes`: 1 with
        an off-white sclera, the third training set; 2 with the sclera left white, the fourth). Either leaves
        everything else of the seed's skin as it was. ``photo``: a photo's albedo per vertex (V,3 linear, NaN where
        it has none; :mod:`likeness.learned.photoskin`), which replaces the face's skin on :data:`PHOTO_SHARE` of
        the seeds (:meth:`_photo_face`; the fifth training set)."""
        rng = np.random.default_rng([seed, 0x5C1])
        n = self.model.vertex_count
        half = 0.0 if family == "train" else 0.5
        t = (rng.integers(0, 7) + half + rng.uniform(-0.2, 0.2)) / 7.0
        tone = _palette(TONES, t) * rng.uniform(0.9, 1.1, 3)
        albedo = np.tile(tone, (n, 1))
        v = self.v
        # low-frequency variation: a few soft colour blobs over the head
        for _ in range(rng.integers(4, 9)):
            c = v[rng.integers(0, self.model.face_vertex_count)]
            r = rng.uniform(1.5, 5.0)
            fall = np.exp(-np.sum((v - c) ** 2, axis=1) / (2 * r * r))[:, None]
            albedo *= 1 + fall * rng.uniform(-0.18, 0.18, 3)
        redness = rng.uniform(0.0, 0.25)
        cheek = np.exp(-(self.cheek / rng.uniform(1.5, 3.0)) ** 2)[:, None] * self.front[:, None]
        nose = np.exp(-(self.nose_dist / 1.5) ** 2)[:, None] * self.front[:, None]
        albedo *= 1 + (cheek + 0.6 * nose) * redness * np.array([0.5, -0.25, -0.25])
        if rng.random() < 0.25:  # blush
            albedo = _mix(albedo, tone * [1.25, 0.75, 0.8], cheek * rng.uniform(0.2, 0.5))
        # per-vertex grain, freckles, moles
        albedo *= 1 + rng.normal(0, rng.uniform(0.01, 0.05), (n, 1))
        if rng.random() < 0.15:
            spots = (rng.random(n) < rng.uniform(0.005, 0.03)) & self.front
            albedo[spots] *= rng.uniform(0.6, 0.9)
        for _ in range(rng.integers(0, 3)):
            albedo[rng.integers(0, self.model.face_vertex_count)] *= 0.35
        # lips: darker, redder; lipstick sometimes
        lip_w = (np.clip(1.0 - self.lip_soft / rng.uniform(0.15, 0.35), 0, 1) * self.front)[:, None]
        lip_w = np.maximum(lip_w, self.lip[:, None] * 1.0)
        lip_color = tone * np.array([1.05, 0.62, 0.65]) * rng.uniform(0.65, 0.95)
        if rng.random() < 0.2:
            lip_color = rng.choice([[0.45, 0.03, 0.05], [0.25, 0.05, 0.08], [0.55, 0.18, 0.20], [0.2, 0.1, 0.1]])
        albedo = _mix(albedo, lip_color, lip_w * rng.uniform(0.6, 1.0))
        # brows: hair colour, a band around the brow line with ragged density. ``detail`` skins mostly get the
        # dense, dark brows and lash lines most faces show (the cue for brow and lid shapes); the rest, and
        # every skin without ``detail``, the thin faint brows of the first training set
        hair = _palette(HAIR, rng.uniform()) * rng.uniform(0.8, 1.2, 3)
        brow_color = hair if rng.random() < 0.8 else _palette(HAIR, rng.uniform())
        full = detail and rng.random() < 0.8
        if full:
            brow_color = np.minimum(brow_color, tone * rng.uniform(0.25, 0.6))
            above, below = rng.uniform(0.15, 0.45), rng.uniform(0.35, 0.8)  # cm above / below the brow line
            edge = np.where(self.brow_above, self.brow / above, self.brow / below)
            brow_w = np.clip(1.3 - edge, 0, 1) * self.front * self.brow_span
            brow_w *= np.clip(rng.normal(0.95, 0.15, n), 0, 1) * rng.uniform(0.8, 1.0)
        else:
            thick = rng.uniform(0.35, 0.8)
            brow_w = np.clip(1.0 - self.brow / thick, 0, 1) ** 0.5 * self.front
            brow_w *= np.clip(rng.normal(0.9, 0.2, n), 0, 1) * rng.uniform(0.75, 1.0)
        albedo = _mix(albedo, brow_color, brow_w[:, None])
        if full:  # lashes: a dark line on the upper lid's edge, a fainter one on the lower
            lash = np.clip(1.0 - self.upper_lid / rng.uniform(0.08, 0.18), 0, 1) * self.front
            lash = np.maximum(lash, 0.5 * np.clip(1.0 - self.lower_lid / 0.08, 0, 1) * self.front)
            albedo = _mix(albedo, np.minimum(brow_color, 0.03), (lash * rng.uniform(0.5, 0.9))[:, None])
        # eye make-up
        if rng.random() < 0.25:
            liner = np.clip(1.0 - self.upper_lid / rng.uniform(0.1, 0.25), 0, 1) * self.front
            albedo = _mix(albedo, [0.02, 0.02, 0.02], liner[:, None] * 0.9)
        if rng.random() < 0.15:
            shade = np.clip(1.0 - self.eye_dist / rng.uniform(1.4, 2.0), 0, 1) * self.front
            shade *= self.v[:, 1] > self.lm[36:48, 1].mean()
            albedo = _mix(albedo, rng.uniform(0.05, 0.4, 3), shade[:, None] * rng.uniform(0.3, 0.7))
        # stubble or beard
        if rng.random() < 0.3:
            density = rng.uniform(0.15, 0.9)
            zone = (self.beard_zone | self.moustache) & ~self.lip
            patch = zone & (rng.random(n) < 0.9)
            w = density * np.clip(rng.normal(1.0, 0.3, n), 0, 1) * patch
            albedo = _mix(albedo, hair * 0.7, w[:, None])
        # scalp hair
        if rng.random() < 0.6:
            albedo = _mix(albedo, hair, (self.scalp * rng.uniform(0.7, 1.0))[:, None])
        # interior parts and eyes
        albedo[self.region == 1] = tone * [0.45, 0.12, 0.12] * rng.uniform(0.3, 0.8)
        albedo[self.region == 2] = tone * [0.9, 0.55, 0.55]
        albedo[self.region == 3] = np.array([0.45, 0.08, 0.08]) * rng.uniform(0.6, 1.1)
        albedo[self.region == 4] = np.array([0.80, 0.76, 0.66]) * rng.uniform(0.7, 1.0)
        albedo[self.eyeball] = np.array([0.80, 0.78, 0.75]) * rng.uniform(0.8, 1.0, 3)
        iris = _palette(IRIS, rng.uniform()) * rng.uniform(0.8, 1.2, 3)
        albedo[self.iris] = iris * (1 + rng.normal(0, 0.15, (self.iris.sum(), 1)))
        albedo[self.pupil] = 0.01
        gloss = np.full(n, rng.uniform(0.1, 0.5))
        gloss[self.eyeball] = 1.0
        gloss[self.lip] = min(1.0, gloss[0] + rng.uniform(0.1, 0.5))
        if photo is not None:
            albedo = self._photo_face(albedo, photo, tone, np.random.default_rng([seed, 0x9407]))
        if eyes:
            albedo = self._photo_eyes(albedo, hair, rng, dim_sclera=eyes == 1)
        return Skin(np.clip(albedo, 0.005, 0.95).astype(np.float32), gloss.astype(np.float32))

    def _photo_face(self, albedo: np.ndarray, photo: np.ndarray, tone: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
        """``albedo`` (V,3) with the face's skin (the face region's skin vertices where ``photo`` has a value)
        taken from ``photo`` on :data:`PHOTO_SHARE` of the draws, else unchanged: the photo's colours divided by
        their median over that skin and multiplied by the skin's own ``tone`` (so the photo's brows, lashes, lips
        and pores keep their contrast against the skin at any tone), a random ±10 % per channel, faded into the
        painted skin over the last centimetre before the face region's outer edge or a gap in the photo
        (:meth:`_photo_inset`). Draws only from ``rng`` (its own stream)."""
        if rng.random() >= PHOTO_SHARE:
            return albedo
        face = self.front & (self.region == 0) & np.isfinite(photo).all(1)
        if not face.any():
            return albedo
        median = np.maximum(np.median(photo[face], axis=0), 1e-3)
        toned = photo[face] / median * tone * rng.uniform(0.9, 1.1, 3)
        weight = np.clip(self._photo_inset(photo)[face] / 1.0, 0.0, 1.0)[:, None]
        out = albedo.copy()
        out[face] = weight * toned + (1.0 - weight) * albedo[face]
        return out

    def _photo_inset(self, photo: np.ndarray) -> np.ndarray:
        """How far (cm) each vertex lies from the face region's outer edge or from the nearest face-region vertex
        that ``photo`` leaves out (hair, untextured), whichever is nearer: where the photo fades into the painted
        skin. Kept for the last photo (a shard paints every face with the same one)."""
        if self._inset_for is not photo:
            inset = self.face_inset.copy()
            missing = self.front & (self.region == 0) & ~np.isfinite(photo).all(1)
            if missing.any():
                inset[self.front] = np.minimum(inset[self.front], cKDTree(self.v[missing]).query(self.v[self.front])[0])
            self._inset_for, self._inset = photo, inset
        return self._inset

    def _photo_eyes(self, albedo: np.ndarray, hair: np.ndarray, rng: np.random.Generator,
                    dim_sclera: bool = True) -> np.ndarray:
        """The eyes as photos show them, over a painted skin (V,3 linear; a copy is returned): a thick near-black
        upper lash line on every skin (the lash cards are not drawn, and in a photo the lashes and the lid's
        shadow make the upper lid's edge the darkest line of the face) and a fainter lower one; mostly dark brown
        irises (most of the world's) with a darker limbal ring; with ``dim_sclera`` a sclera that is off-white
        (albedo 0.37–0.68), which read the tuning renders' gaze worse than the white one kept without it (0.60–0.80;
        the same draws either way). Draws from ``rng`` after everything else, so the rest of the skin is the same with
        or without it."""
        albedo = albedo.copy()
        lash_color = np.minimum(hair * 0.3, 0.02)
        upper = np.clip(1.0 - self.upper_lid / rng.uniform(0.12, 0.3), 0, 1) ** 0.7
        lower = np.clip(1.0 - self.lower_lid / rng.uniform(0.05, 0.12), 0, 1) * rng.uniform(0.3, 0.6)
        lash = np.maximum(upper * rng.uniform(0.75, 1.0), lower) * self.front
        albedo = _mix(albedo, lash_color, lash[:, None])
        sclera = np.array([0.62, 0.58, 0.53]) * rng.uniform(0.7, 1.1) * (1 + rng.uniform(-0.05, 0.1, 3) * [1, -1, -1])
        grain = 1 + rng.normal(0, 0.04, (int(self.eyeball.sum()), 1))
        if dim_sclera:
            albedo[self.eyeball] = sclera * grain
        if rng.random() < 0.65:  # brown, dark brown
            iris = _palette(IRIS[:2], rng.uniform()) * rng.uniform(0.6, 1.2)
        else:
            iris = _palette(IRIS, rng.uniform()) * rng.uniform(0.5, 1.0, 3)
        ring = np.clip((self.iris_radial[self.iris] - 0.45) / 0.17, 0, 1)[:, None]  # 0 inside, 1 at the limbus
        texture = 1 + rng.normal(0, 0.15, (int(self.iris.sum()), 1))
        albedo[self.iris] = iris * texture * (1 - 0.6 * ring)
        albedo[self.pupil] = 0.008
        return albedo

    def crease(self, skin: Skin, rest: np.ndarray, posed: np.ndarray, strength: float,
               rng: np.random.Generator) -> Skin:
        """``skin`` darkened where the expression compresses the face's surface: the folds and wrinkles that
        frowns, squints, raised brows and smiles make, drawn from how much shorter each vertex's edges get
        between the ``rest`` and ``posed`` vertices (V,3; same identity). ``strength`` 0 leaves the skin as is."""
        if strength <= 0:
            return skin
        a, b = self.edges[:, 0], self.edges[:, 1]
        ratio = np.linalg.norm(posed[a] - posed[b], axis=1) / np.maximum(np.linalg.norm(rest[a] - rest[b], axis=1),
                                                                        1e-9)
        n = self.model.vertex_count
        total = np.bincount(a, ratio, n) + np.bincount(b, ratio, n)
        count = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
        mean = np.where(count > 0, total / np.maximum(count, 1), 1.0)
        fold = np.clip((1.0 - mean) / 0.25, 0.0, 1.0) * np.clip(rng.normal(1.0, 0.35, n), 0.0, 1.5)
        return Skin((skin.albedo * (1.0 - strength * np.clip(fold, 0, 1))[:, None]).astype(np.float32), skin.gloss)


def _palette(colors: np.ndarray, t: float) -> np.ndarray:
    """Linear interpolation along a palette's rows, ``t`` in [0, 1]."""
    x = np.clip(t, 0, 1) * (len(colors) - 1)
    i = min(int(x), len(colors) - 2)
    return colors[i] * (1 - (x - i)) + colors[i + 1] * (x - i)


def _mix(a: np.ndarray, b, w: np.ndarray) -> np.ndarray:
    return a * (1 - w) + np.asarray(b) * w


def _inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd test of points (N,2) against a closed polygon (M,≥2), vectorised over the points."""
    x, y = points[:, 0], points[:, 1]
    inside = np.zeros(len(points), bool)
    px, py = polygon[:, 0], polygon[:, 1]
    for i in range(len(polygon)):
        x0, y0, x1, y1 = px[i - 1], py[i - 1], px[i], py[i]
        crosses = (y0 > y) != (y1 > y)
        at = x0 + (y - y0) * (x1 - x0) / np.where(y1 == y0, 1e-12, y1 - y0)
        inside ^= crosses & (x < at)
    return inside


def _polyline_distance(points: np.ndarray, line: np.ndarray, closed: bool = False) -> np.ndarray:
    """Distance (N,) from points (N,2) to a polyline of (M,≥2) corners (only x, y used)."""
    line = line[:, :2]
    a, b = line[:-1], line[1:]
    if closed:
        a, b = np.vstack([a, line[-1:]]), np.vstack([b, line[:1]])
    ab = b - a
    t = np.clip(np.einsum("nmk,mk->nm", points[:, None] - a, ab) / np.maximum((ab ** 2).sum(1), 1e-12), 0, 1)
    nearest = a + t[..., None] * ab
    return np.linalg.norm(points[:, None] - nearest, axis=2).min(1)


def _soft_distance(points: np.ndarray, polygon: np.ndarray, closed: bool) -> np.ndarray:
    """Distance to a closed polygon's outline, 0 inside it."""
    d = _polyline_distance(points, polygon, closed=closed)
    return np.where(_inside(points, polygon), 0.0, d)
