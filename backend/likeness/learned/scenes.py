"""Training scenes with SMIRK-style expression augmentation: what each training render shows, drawn from a seed.

Expressions are deliberately wider than any benchmark's plan: rare and extreme shapes alone, one-sided shapes,
random sparse mixes, speech visemes, subtle weights, winks, continuous gaze, all on random identities, poses,
framings and lights. Conventions are the bundle's (docs/bundle.md): metres, head frame +Y up, +Z out of the face,
+X the subject's left; OpenGL camera frame; ``R = Rz(-roll) · Rx(pitch) · Ry(yaw)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.camera import Camera
from ..model.geometry import head_rotation
from .render import Lighting

#: The shapes that cannot both be on (left/right of the jaw and mouth, lid closed and wide open).
EXCLUSIVE = (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight"), ("eyeBlink_L", "eyeWide_L"),
             ("eyeBlink_R", "eyeWide_R"))
SPEECH = (("jawOpen",), ("jawOpen", "mouthFunnel"), ("jawOpen", "mouthPucker"), ("mouthClose", "jawOpen"),
          ("mouthRollLower", "mouthRollUpper"), ("mouthPress_L", "mouthPress_R"), ("mouthPucker",),
          ("mouthFunnel",), ("mouthShrugUpper", "mouthShrugLower"), ("mouthUpperUp_L", "mouthUpperUp_R"),
          ("mouthLowerDown_L", "mouthLowerDown_R"), ("mouthStretch_L", "mouthStretch_R"))
#: How often each kind of expression is drawn.
KINDS = {"neutral": 0.04, "single": 0.16, "one_sided": 0.14, "action": 0.10, "combined": 0.24, "sparse": 0.12,
         "speech": 0.10, "subtle": 0.10}
YAW_MAX, PITCH_MAX, ROLL_MAX = 55.0, 25.0, 20.0
#: The training lenses are 0.7–1.6 × this multiple of the long side (a 50 mm full-frame lens): the recipe of the
#: shipped weights, independent of the product's guess for photos without EXIF.
FOCAL_FACTOR = 50.0 / 36.0


@dataclass(frozen=True)
class TrainingScene:
    """One training render's ground truth and setting."""

    identity: np.ndarray  # (K,) ~N(0, 1)
    expression: np.ndarray  # (E,) in [0, 1], the model's order
    rotation: np.ndarray  # (3,3) head frame → camera frame
    translation: np.ndarray  # (3,) m
    angles: tuple[float, float, float]  # yaw, pitch, roll (deg)
    camera: Camera
    light: Lighting
    skin_seed: int
    occluder: bool
    plain: bool = False  # a studio backdrop instead of a cluttered one (training data versions 3 and 4)


def draw_expression(names: tuple[str, ...], rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A (E,) weight vector and its kind (see :data:`KINDS`)."""
    index = {n: i for i, n in enumerate(names)}
    shapes = [n for n in names if not n.startswith("eyeLook")]
    sided = [n for n in shapes if n.endswith(("_L", "_R"))]
    bases = sorted({n[:-2] for n in sided}) + [n for n in shapes if not n.endswith(("_L", "_R"))]
    kind = str(rng.choice(list(KINDS), p=np.array(list(KINDS.values())) / sum(KINDS.values())))
    w = np.zeros(len(names))

    def action(base: str, weight: float, side: str | None = None) -> None:
        for s in ((side,) if side else ("L", "R")) if base + "_L" in index else (None,):
            name = base if s is None else f"{base}_{s}"
            w[index[name]] = max(w[index[name]], weight)

    def strength() -> float:  # extremes are as likely as the middle
        return float(rng.uniform(0.25, 1.0)) if rng.random() < 0.7 else float(rng.uniform(0.8, 1.0))

    if kind == "single":
        w[index[str(rng.choice(shapes))]] = strength()
    elif kind == "one_sided":
        for _ in range(rng.integers(1, 3)):
            w[index[str(rng.choice(sided))]] = strength()
    elif kind == "action":
        action(str(rng.choice(bases)), strength())
    elif kind == "combined":
        for base in rng.choice(bases, size=rng.integers(2, 6), replace=False):
            side = str(rng.choice(["L", "R"])) if rng.random() < 0.35 else None
            action(str(base), strength(), side)
    elif kind == "sparse":
        on = rng.random(len(shapes)) < rng.uniform(0.05, 0.2)
        for name in np.array(shapes)[on]:
            w[index[str(name)]] = rng.uniform(0.05, 1.0)
    elif kind == "speech":
        for name in SPEECH[rng.integers(len(SPEECH))]:
            w[index[name]] = strength() * (1.0 if rng.random() < 0.7 else rng.uniform(0.5, 1.0))
        if rng.random() < 0.3:
            action(str(rng.choice(bases)), float(rng.uniform(0.1, 0.6)))
    elif kind == "subtle":
        for base in rng.choice(bases, size=rng.integers(1, 4), replace=False):
            action(str(base), float(rng.uniform(0.05, 0.35)), str(rng.choice(["L", "R"])) if rng.random() < 0.3 else None)
    if rng.random() < 0.06:  # a wink
        w[index[f"eyeBlink_{rng.choice(['L', 'R'])}"]] = rng.uniform(0.6, 1.0)
    if rng.random() < 0.35:  # gaze, both eyes the same way (conjugate)
        gx = rng.uniform(-1, 1) if rng.random() < 0.7 else 0.0
        gy = rng.uniform(-1, 1) if rng.random() < 0.6 else 0.0
        w[index["eyeLookOut_L"]] = w[index["eyeLookIn_R"]] = max(gx, 0.0)
        w[index["eyeLookIn_L"]] = w[index["eyeLookOut_R"]] = max(-gx, 0.0)
        w[index["eyeLookUp_L"]] = w[index["eyeLookUp_R"]] = max(gy, 0.0)
        w[index["eyeLookDown_L"]] = w[index["eyeLookDown_R"]] = max(-gy, 0.0)
    for a, b in EXCLUSIVE:
        if w[index[a]] > 0 and w[index[b]] > 0:
            w[index[a if rng.random() < 0.5 else b]] = 0.0
    if w[index["mouthClose"]] > 0:  # mouthClose is a corrective of jawOpen: never more than it
        w[index["jawOpen"]] = max(w[index["jawOpen"]], w[index["mouthClose"]] + rng.uniform(0, 0.3))
    return np.clip(w, 0.0, 1.0), kind


def draw_scene(names: tuple[str, ...], identity_count: int, face_centre: np.ndarray, skins: list[int],
               rng: np.random.Generator, photo: bool = False) -> TrainingScene:
    """One training scene. ``face_centre``: head-frame point (m) the camera frames; ``skins``: seeds to pick from.
    ``photo`` (the third training set) lights 40 % of the scenes as a portrait studio does (a large soft key near
    the camera, a bright fill, little colour) and puts 35 % before a plain backdrop; its draws come last, so the
    rest of the scene is the same with or without it."""
    expression, _ = draw_expression(names, rng)
    identity = rng.standard_normal(identity_count) * rng.uniform(0.5, 1.2)
    yaw, pitch, roll = rng.uniform(-1, 1, 3) * (YAW_MAX, PITCH_MAX, ROLL_MAX)
    rot = head_rotation(yaw, pitch, roll)
    width, height = (int(rng.integers(28, 46)) * 16 for _ in range(2))
    long_side = max(width, height)
    focal = FOCAL_FACTOR * long_side * rng.uniform(0.7, 1.6)
    iod_px = rng.uniform(35, 130)
    distance = float(np.clip(focal * 0.063 / iod_px, 0.25, 3.0))
    offset = rng.uniform(-0.15, 0.15, 2) * (width, height)
    target = np.array([offset[0] * distance / focal, -offset[1] * distance / focal, -distance])
    camera = Camera(float(focal), (width / 2.0, height / 2.0), (width, height))
    az, el = np.radians(rng.uniform(-70, 70)), np.radians(rng.uniform(-10, 60))
    key_dir = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
    tint = rng.uniform(0.85, 1.15, 3)
    light = Lighting(key_direction=key_dir, key=rng.uniform(0.6, 2.0) * tint / tint.mean(),
                     fill=rng.uniform(0.1, 0.6) * rng.uniform(0.85, 1.15, 3), specular=float(rng.uniform(0.0, 0.5)),
                     wrap=float(rng.uniform(0.0, 0.5)))
    skin_seed, occluder = int(rng.choice(skins)), bool(rng.random() < 0.08)
    plain = False
    if photo:
        if rng.random() < 0.4:
            az, el = np.radians(rng.uniform(-35, 35)), np.radians(rng.uniform(0, 40))
            tint = rng.uniform(0.95, 1.05, 3)
            light = Lighting(key_direction=np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)]),
                             key=rng.uniform(0.5, 1.2) * tint / tint.mean(), fill=np.full(3, rng.uniform(0.35, 0.8)),
                             specular=float(rng.uniform(0.0, 0.25)), wrap=float(rng.uniform(0.5, 0.9)))
        plain = bool(rng.random() < 0.35)
    return TrainingScene(identity=identity, expression=expression, rotation=rot,
                         translation=target - rot @ face_centre, angles=(float(yaw), float(pitch), float(roll)),
                         camera=camera, light=light, skin_seed=skin_seed, occluder=occluder, plain=plain)
