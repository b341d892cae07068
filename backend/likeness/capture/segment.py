"""Per-photo segmentation: which pixels show skin, hair, clothing, background, or something else.

Only skin may reach the skin albedo (:mod:`likeness.appearance.texture`); hair becomes its own colour and mask in
the bundle.
A photo is labelled at a working resolution (long side :data:`WORK_SIDE` px) and the results are scaled back to
the photo's pixels:

- **person vs background**: MediaPipe's selfie segmentation (the model ships in the ``mediapipe`` wheel); without
  it, a head-and-shoulders region around the face landmarks;
- **skin colour**: a Gaussian in (log R/G, log B/G, log luminance) learned per photo from the inner face (cheeks,
  forehead, nose bridge: MediaPipe's 478 landmarks), so it follows the person's skin and the photo's cast;
- **face features**: brows, eyes, nose and lips (the landmarks' hull from the brows to the lower lip) are the face's
  own surface and always count as skin, whatever their colour;
- **hair**: person pixels that are not skin-like, above the mouth; their colour model comes from those above and
  around the forehead. Non-skin pixels far from both models (a hat, a hand, glasses frames) are occluders;
- **clothing / body**: person pixels that are not skin-like, below the mouth (beside and below the jaw);
- **the mouth's opening**: what the inner lip line encloses (teeth, tongue, the mouth's dark inside) is never
  skin, so a lip that the fit places a few pixels off does not carry teeth into the skin albedo (a neutral head
  would show a white line between its lips). The eyes are left alone: MediaPipe's lid contour runs along the lash
  line, which is the only lash line the head shows (its eyelash cards are hidden), and masking the eyes as well
  cost the likeness bench 0.008 at 30° (docs/quality.md, section 6).

Pixels: (H,W) arrays, x right, y down, as the photo. Everything here is vectorised NumPy/OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .selfie import PersonSegmenter

#: Label values of :attr:`Segmentation.labels`.
BACKGROUND, SKIN, HAIR, CLOTHING, OCCLUDER, OPENING = 0, 1, 2, 3, 4, 5
LABEL_NAMES = {BACKGROUND: "background", SKIN: "skin", HAIR: "hair", CLOTHING: "clothing", OCCLUDER: "occluder",
               OPENING: "opening"}
#: Photos are labelled with their long side at most this many pixels.
WORK_SIDE = 512
#: Skin-colour distance (Mahalanobis, in standard deviations of the learned skin) below which a pixel is fully
#: skin, and above which it is not skin at all (soft in between).
SKIN_NEAR, SKIN_FAR = 2.5, 4.0
#: Hair-colour distance beyond which a non-skin pixel above the mouth is an occluder rather than hair.
HAIR_FAR = 4.5
#: Spread added to the learned colour models (log units): a photo's few skin samples would be too strict (shading,
#: grey photos with no chroma at all).
_SKIN_FLOOR = np.array([0.035, 0.05, 0.28])
_HAIR_FLOOR = np.array([0.06, 0.08, 0.35])

# MediaPipe Face Mesh indices
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
             149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
#: Where the skin colour is learned: cheeks, forehead, nose bridge (away from brows, eyes, lips and nostrils).
SKIN_SAMPLES = [50, 280, 117, 346, 205, 425, 151, 108, 337, 9, 197, 6]
#: Brows, eyes, nose and lips: their hull is "face features" (always skin).
FEATURES = [70, 63, 105, 66, 107, 336, 296, 334, 293, 300, 33, 133, 263, 362, 145, 374, 1, 98, 327, 61, 291, 17,
            14, 0]
#: The inner lip line, in order around: what it encloses is the mouth's opening (teeth, tongue), not skin.
OPENINGS = ([78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95],)
_MOUTH = (61, 291)
_BROWS = (105, 334)
_CHIN, _TOP = 152, 10


@dataclass(frozen=True)
class Segmentation:
    """One photo's labels, at the working size (the photo's, or smaller: long side :data:`WORK_SIDE`).

    ``labels`` (h,w) uint8 holds :data:`SKIN`, :data:`HAIR`, ... ; ``skin`` and ``hair`` (h,w) uint8 are soft
    weights 0–255 (255 = surely skin / hair; edges are soft). They cover the whole photo of ``photo_size``
    (width, height): photo pixel coordinates × (w / width, h / height) are theirs (never scaled up: a 4096-px
    photo's masks would cost more to scale than to compute). ``hair_rgb`` is the median sRGB colour (0–255) of
    the hair pixels, or None when the photo shows too little hair. ``person_source`` says what told person from
    background: ``selfie`` (MediaPipe) or ``landmarks`` (the fallback).
    """

    labels: np.ndarray
    skin: np.ndarray
    hair: np.ndarray
    hair_rgb: np.ndarray | None
    person_source: str
    photo_size: tuple[int, int]

    def fractions(self) -> dict[str, float]:
        """Share of the photo's pixels per label name."""
        counts = np.bincount(self.labels.ravel(), minlength=len(LABEL_NAMES))
        return {name: float(counts[k] / max(self.labels.size, 1)) for k, name in LABEL_NAMES.items()}


_LOG = np.log(np.arange(256, dtype=np.float32) + 8.0)


def colour_features(rgb: np.ndarray) -> np.ndarray:
    """(…,3) float32 features of sRGB uint8 pixels (…,3): log(R/G), log(B/G), log luminance (Rec. 601 grey,
    rounded to 8 bits), with an offset of 8/255 so black stays finite. Lookup tables: no per-pixel logarithm."""
    rgb = np.ascontiguousarray(rgb, np.uint8)
    grey = cv2.cvtColor(rgb.reshape(-1, 1, 3), cv2.COLOR_RGB2GRAY).reshape(rgb.shape[:-1])
    logs = _LOG[rgb]
    return np.stack([logs[..., 0] - logs[..., 1], logs[..., 2] - logs[..., 1], _LOG[grey]], axis=-1)


@dataclass(frozen=True)
class ColourModel:
    """A Gaussian over :func:`colour_features` (mean (3,), inverse covariance (3,3))."""

    mean: np.ndarray
    inverse: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, floor: np.ndarray) -> "ColourModel":
        """Robust fit to samples (N,3): median start, then mean and covariance of the samples within 3 standard
        deviations (a stray eyelash or highlight does not widen it); ``floor`` (3,) is added as spread."""
        features = np.asarray(features, np.float64).reshape(-1, 3)
        if len(features) < 3:
            raise ValueError("a colour model needs at least 3 samples")
        centre = np.median(features, axis=0)
        spread = 1.4826 * np.median(np.abs(features - centre), axis=0) + floor
        keep = (((features - centre) / spread) ** 2).sum(1) < 9.0
        inliers = features[keep] if keep.sum() >= 3 else features
        cov = np.cov(inliers.T) + np.diag(floor ** 2)
        return cls(inliers.mean(0), np.linalg.inv(cov))

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance (…,) of features (…,3) from the model."""
        whiten = np.linalg.cholesky(self.inverse).T  # inverse = Wᵀ W: |W d|² is the distance²
        affine = np.hstack([whiten, -(whiten @ self.mean)[:, None]]).astype(np.float32)
        y = cv2.transform(np.ascontiguousarray(features, np.float32).reshape(-1, 1, 3), affine)  # OpenCV: fast
        squared = cv2.transform(cv2.multiply(y, y), np.ones((1, 3), np.float32))
        return cv2.sqrt(squared).reshape(features.shape[:-1])


def _disc_samples(image: np.ndarray, centres: np.ndarray, radius: float) -> np.ndarray:
    """Pixels (N,C) inside discs of ``radius`` px around ``centres`` (K,2), clipped to the image."""
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    for x, y in np.round(centres).astype(int):
        cv2.circle(mask, (int(x), int(y)), max(int(round(radius)), 1), 255, -1)
    return image[mask > 0]


def _polygon(shape: tuple[int, int], points: np.ndarray, hull: bool = False) -> np.ndarray:
    """(h,w) bool mask of a polygon (or the convex hull of points) in pixel coordinates."""
    mask = np.zeros(shape, np.uint8)
    pts = np.round(points).astype(np.int32)
    if hull:
        cv2.fillConvexPoly(mask, cv2.convexHull(pts), 1)
    else:
        cv2.fillPoly(mask, [pts], 1)
    return mask.astype(bool)


def _thickness(ring: np.ndarray) -> float:
    """Mean width (px) of a closed polygon (K,2): twice its area over its perimeter (a thin sliver's width)."""
    x, y = ring[:, 0], ring[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    return 2.0 * area / max(float(np.linalg.norm(ring - np.roll(ring, -1, axis=0), axis=1).sum()), 1e-9)


def landmark_person(shape: tuple[int, int], points_px: np.ndarray) -> np.ndarray:
    """Fallback person probability (h,w) float32 from the face landmarks alone: the face oval grown to take in
    hair and ears (×1.5 about its centre, more upward), plus neck and shoulders below it."""
    oval = points_px[FACE_OVAL]
    centre = oval.mean(0)
    grown = centre + (oval - centre) * 1.5 - np.array([0.0, 0.15]) * np.ptp(oval[:, 1])
    mask = _polygon(shape, grown).astype(np.uint8)
    width = np.ptp(oval[:, 0])
    x0, x1 = int(centre[0] - 1.2 * width), int(centre[0] + 1.2 * width)
    mask[int(points_px[_CHIN, 1]):, max(x0, 0):max(x1, 0)] = 1
    return mask.astype(np.float32)


def label_pixels(rgb: np.ndarray, points_px: np.ndarray, person: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """Labels (h,w) uint8, soft skin and hair weights (h,w) float32 in [0,1] and the hair's median sRGB (or None)
    of a photo at working size, given its 478 MediaPipe landmarks (pixels of ``rgb``) and a person probability
    (h,w) (None: :func:`landmark_person`). Raises ValueError on input it cannot read."""
    rgb = np.asarray(rgb)
    points = np.asarray(points_px, np.float64)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 8:
        raise ValueError(f"expected an (H,W,3) uint8 photo of at least 8×8 px, got {rgb.shape} {rgb.dtype}")
    if points.ndim != 2 or points.shape[0] < 468 or points.shape[1] < 2 or not np.isfinite(points[:, :2]).all():
        raise ValueError(f"expected MediaPipe's 468 or 478 face landmarks (N,2), got {points.shape}")
    points = points[:, :2]
    shape = rgb.shape[:2]
    if person is None or person.shape != shape:
        person = landmark_person(shape, points)
    iod = max(float(np.linalg.norm(points[33] - points[263])), 4.0)
    features = colour_features(rgb)

    samples = _disc_samples(features, points[SKIN_SAMPLES], 0.07 * iod)
    if len(samples) < 20:
        raise ValueError(f"only {len(samples)} pixels of cheeks, forehead and nose lie inside the photo: too few to "
                         "learn the skin's colour")
    skin_model = ColourModel.fit(samples, _SKIN_FLOOR)
    skin_d = skin_model.distance(features)
    skin_like = np.clip((SKIN_FAR - skin_d) / (SKIN_FAR - SKIN_NEAR), 0.0, 1.0)

    # the face's own axes, so a tilted head is handled: "up" from the chin to the top of the forehead
    up = points[_TOP] - points[_CHIN]
    up /= max(np.linalg.norm(up), 1e-6)
    side = np.array([-up[1], up[0]])
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    height = (xs - points[_CHIN, 0]) * up[0] + (ys - points[_CHIN, 1]) * up[1]  # px above the chin, along "up"
    across = (xs - points[_CHIN, 0]) * side[0] + (ys - points[_CHIN, 1]) * side[1]
    level = lambda ids: float(np.mean([(points[i] - points[_CHIN]) @ up for i in ids]))  # noqa: E731
    mouth, brows, face_height = level(_MOUTH), level(_BROWS), level([_TOP])
    face_width = float(np.ptp(points[FACE_OVAL] @ side))
    middle = float(np.mean((points[FACE_OVAL] - points[_CHIN]) @ side))

    oval = _polygon(shape, points[FACE_OVAL])
    features_zone = cv2.dilate(_polygon(shape, points[FEATURES], hull=True).astype(np.uint8),
                               np.ones((3, 3), np.uint8), iterations=max(int(0.05 * iod), 1)).astype(bool)
    is_person = person >= 0.5

    # hair colour: person pixels above the brows, around and above the forehead, that are not skin-like
    band = (height > brows) & (np.abs(across - middle) < 0.75 * face_width) & (height < 1.6 * face_height)
    hair_samples = band & is_person & (skin_d > SKIN_FAR) & ~features_zone
    hair_model = None
    if hair_samples.sum() >= 30:
        hair_model = ColourModel.fit(features[hair_samples][::max(int(hair_samples.sum()) // 4000, 1)], _HAIR_FLOOR)
    hair_d = hair_model.distance(features) if hair_model is not None else np.zeros(shape, np.float32)
    hair_like = hair_d < np.minimum(skin_d, HAIR_FAR)  # nearer hair than skin, and near the hair

    not_skin = skin_d > (SKIN_NEAR + SKIN_FAR) / 2
    above_mouth = height > mouth
    labels = np.full(shape, BACKGROUND, np.uint8)
    labels[is_person] = SKIN
    labels[is_person & not_skin & ~above_mouth] = CLOTHING
    labels[is_person & not_skin & above_mouth] = OCCLUDER
    labels[is_person & not_skin & above_mouth & hair_like] = HAIR
    if hair_model is not None:  # above the brows, beside or over the face: light hair may look like skin
        labels[is_person & ~oval & (height > brows) & (hair_d < skin_d)] = HAIR
    # inside the face the features are skin; elsewhere shading is strong, so only what is clearly not skin is not:
    # hair (a fringe, a beard) or an occluder (far from both colours)
    face = oval & ~features_zone
    labels[oval] = SKIN
    labels[face & (skin_d > SKIN_FAR) & hair_like] = HAIR
    labels[face & (skin_d > 2 * SKIN_FAR) & ~hair_like] = OCCLUDER
    for ring in OPENINGS:
        if _thickness(points[ring]) >= 1.0:  # a shut mouth or eye is a line: its pixels stay lip and lid
            labels[_polygon(shape, points[ring])] = OPENING

    skin = np.where(oval, 1.0, skin_like * np.clip(person * 2.0 - 0.5, 0.0, 1.0))
    skin = np.where(labels == SKIN, skin, 0.0).astype(np.float32)
    hair = (labels == HAIR).astype(np.float32)
    soft = max(0.6, 0.01 * iod)
    # soft edges that fade inside the skin: a pixel labelled otherwise never counts as skin at all
    skin = cv2.GaussianBlur(skin, (0, 0), soft) * cv2.erode((labels == SKIN).astype(np.uint8), np.ones((3, 3)))
    hair = cv2.GaussianBlur(hair, (0, 0), soft)
    hairs = rgb[labels == HAIR]
    hair_rgb = np.median(hairs[::max(len(hairs) // 4000, 1)], axis=0) if len(hairs) >= 30 else None
    return labels, skin, hair, hair_rgb


def segment_photo(rgb: np.ndarray, points_px: np.ndarray, segmenter: PersonSegmenter | None = None) -> Segmentation:
    """Label a photo (H,W,3 uint8 sRGB) from its 478 MediaPipe landmarks (pixels, x right, y down), at most
    :data:`WORK_SIDE` px on the long side. ``segmenter`` None uses the landmarks fallback for person vs background."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H,W,3) uint8 photo, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = rgb if scale == 1.0 else cv2.resize(rgb, (max(int(round(w * scale)), 8), max(int(round(h * scale)), 8)),
                                                interpolation=cv2.INTER_AREA)
    sy, sx = small.shape[0] / h, small.shape[1] / w
    points = np.asarray(points_px, np.float64)[:, :2] * np.array([sx, sy])
    person = segmenter.person(small) if segmenter is not None else None
    labels, skin, hair, hair_rgb = label_pixels(small, points, person)
    to8 = lambda a: np.round(np.clip(a, 0.0, 1.0) * 255).astype(np.uint8)  # noqa: E731
    return Segmentation(labels, to8(skin), to8(hair), hair_rgb, "selfie" if person is not None else "landmarks",
                        (w, h))


def tidy_hair_mask(mask: np.ndarray) -> np.ndarray:
    """A baked hair mask (S,S uint8) without specks and pinholes: single light strands read as skin and stray
    dark pixels read as hair would otherwise mottle the hair cap. A 5-texel median, then a closing (dilate, erode)
    with a disc a fiftieth of the texture wide: holes smaller than that fill, the hairline keeps its place."""
    clean = cv2.medianBlur(np.ascontiguousarray(mask, np.uint8), 5)
    radius = max(mask.shape[0] // 100, 1)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.morphologyEx(clean, cv2.MORPH_CLOSE, disc)

