"""Synthetic scenes with known answers: identity, expression, head pose and camera, drawn from a fixed seed.

Conventions are the bundle's (docs/bundle.md): metres; head frame +Y up, +Z out of the face, +X the subject's
left; camera frame OpenGL style (+X image right, +Y image up, looking along −Z); ``model_to_camera`` maps head
frame to camera frame; angles in degrees with ``R = Rz(-roll) · Rx(pitch) · Ry(yaw)``.

An expression is built from *actions*: one unsided shape (``jawOpen``), a sided shape on both sides at one
weight (``mouthSmile_L`` + ``mouthSmile_R``), or a conjugate gaze (both eyes turned the same way). Scenes are
neutral, ``single`` (one action), ``one_sided`` (a single ``_L`` or ``_R`` shape alone) or ``combined`` (2–4
actions, a sided one sometimes on one side only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from likeness.model.camera import model_to_camera
from likeness.capture import gaze
from likeness.model.geometry import head_rotation
from likeness.model.headmodel import HeadModel

SEED = 20261122
IDENTITY_COUNT = 60  # coefficients drawn (the fit estimates as many); the rest of the model's modes stay 0
IDENTITY_SCALE = 0.8
WEIGHT_RANGE = (0.3, 1.0)
YAW_MAX, PITCH_MAX, ROLL_MAX = 45.0, 15.0, 10.0  # degrees, uniform in ±
#: The scenes' lens as a multiple of the long side: 50 mm full-frame equivalent. The benchmarks tell the fit this focal
#: length, as a photo's EXIF would (``synthetic.analyse``); it is not the product's guess for photos without EXIF.
FOCAL_FACTOR = 50.0 / 36.0
DISTANCE_RANGE = (0.5, 0.8)  # metres from the camera to the face centre
IMAGE_SIZES = ((512, 512), (640, 480))
CENTRE_JITTER = 0.08  # the face centre lands within ± this fraction of the image size from the centre

#: Scenes per category in the full set; every action appears twice among the singles, every sided shape
#: (gaze excluded) once alone.
FULL_PLAN = {"neutral": 10, "single": 66, "one_sided": 32, "combined": 42}
#: The ``--quick`` subset: the first scenes of each category of the full set (so their renders are shared).
QUICK_PLAN = {"neutral": 2, "single": 8, "one_sided": 6, "combined": 4}

#: Gaze actions: (name, shapes turned on). ``eyeLookOut_L`` turns the left eye toward the subject's left.
GAZE = {"gazeLeft": ("eyeLookOut_L", "eyeLookIn_R"), "gazeRight": ("eyeLookIn_L", "eyeLookOut_R"),
        "gazeUp": ("eyeLookUp_L", "eyeLookUp_R"), "gazeDown": ("eyeLookDown_L", "eyeLookDown_R")}
#: Actions that cannot be combined with each other in one scene (opposite directions, contradictory lids).
EXCLUSIVE = ({"jawLeft", "jawRight"}, {"mouthLeft", "mouthRight"}, set(GAZE), {"eyeBlink", "eyeWide"},
             {"eyeSquint", "eyeWide"}, {"mouthSmile", "mouthFrown"}, {"mouthClose", "jawOpen"})


@dataclass(frozen=True)
class Scene:
    """One synthetic photo's ground truth. ``expression`` holds the shapes that are on (weight > 0)."""

    name: str
    category: str
    identity: tuple[float, ...]  # IDENTITY_COUNT coefficients, ~N(0, 1)·IDENTITY_SCALE
    expression: dict[str, float]  # shape name → weight in (0, 1]
    yaw: float
    pitch: float
    roll: float
    model_to_camera: tuple[tuple[float, ...], ...]  # 4×4, head frame → camera frame, metres
    focal_px: float
    image_size: tuple[int, int]  # (width, height)
    light: dict[str, float]  # key light azimuth/elevation (deg), energy (W), world strength, backdrop hue

    def as_dict(self) -> dict:
        return asdict(self)

    def expression_vector(self, names: tuple[str, ...]) -> np.ndarray:
        """Weights (E,) in the order of ``names``."""
        return np.array([self.expression.get(n, 0.0) for n in names])


def eye_turns(scene: Scene) -> dict[str, tuple[float, float]]:
    """Eyeball rotation (yaw, pitch) in degrees per eye that the scene's eyeLook* weights stand for
    (:func:`likeness.capture.gaze.eye_turns`)."""
    return gaze.eye_turns(scene.expression)


def posed_vertices(model: HeadModel, scene: Scene) -> np.ndarray:
    """The scene's head (V,3) in metres, head frame: identity, expression, and the eyeballs turned by
    :func:`eye_turns` about their centres (ICT's eyeLook shapes move only the lids, not the eyes)."""
    identity = np.zeros(model.identity_basis.shape[0])
    identity[:len(scene.identity)] = scene.identity
    verts = model.vertices(identity, scene.expression_vector(model.expression_names))
    return gaze.turn_eyes(model, verts, eye_turns(scene))


def actions(names: tuple[str, ...]) -> list[str]:
    """All actions of a model with these expression names: unsided shapes, sided bases (no gaze), gazes."""
    sided = sorted({n[:-2] for n in names if n.endswith(("_L", "_R")) and not n.startswith("eyeLook")})
    unsided = [n for n in names if not n.endswith(("_L", "_R"))]
    return unsided + sided + list(GAZE)


def action_weights(action: str, weight: float, side: str | None, names: tuple[str, ...],
                   rng: np.random.Generator) -> dict[str, float]:
    """The shapes one action turns on. ``side`` "L"/"R" applies a sided action to that side only.

    ``mouthClose`` only makes sense with the jaw open (ARKit semantics), so it brings ``jawOpen`` ≥ its weight.
    """
    if action in GAZE:
        return dict.fromkeys(GAZE[action], weight)
    if action == "mouthClose":
        return {"mouthClose": weight, "jawOpen": float(rng.uniform(weight, 1.0))}
    if action in names:
        return {action: weight}
    sides = (side,) if side else ("L", "R")
    return {f"{action}_{s}": weight for s in sides}


def _exclusive(a: str, b: str) -> bool:
    return any(a in group and b in group for group in EXCLUSIVE)


def _expression(category: str, index: int, names: tuple[str, ...], acts: list[str], sided: list[str],
                rng: np.random.Generator) -> dict[str, float]:
    """Shapes on in scene ``index`` of ``category`` (cycling through the shuffled action / shape lists)."""
    lo, hi = WEIGHT_RANGE
    if category == "neutral":
        return {}
    if category == "single":
        return action_weights(acts[index % len(acts)], float(rng.uniform(lo, hi)), None, names, rng)
    if category == "one_sided":
        return {sided[index % len(sided)]: float(rng.uniform(lo, hi))}
    count, chosen = int(rng.integers(2, 5)), []
    for act in rng.permutation(acts):
        if len(chosen) < count and not any(_exclusive(str(act), c) for c in chosen):
            chosen.append(str(act))
    out: dict[str, float] = {}
    for act in chosen:
        side = str(rng.choice(["L", "R"])) if act not in names and act not in GAZE and rng.random() < 0.3 else None
        for shape, w in action_weights(act, float(rng.uniform(lo, hi)), side, names, rng).items():
            out[shape] = max(out.get(shape, 0.0), w)
    return out


def _pose(rng: np.random.Generator, face_centre: np.ndarray, size: tuple[int, int],
          focal: float) -> tuple[float, float, float, np.ndarray]:
    """Random angles (deg) and the 4×4 model_to_camera putting ``face_centre`` (head frame, m) in view."""
    yaw, pitch, roll = rng.uniform(-1, 1, 3) * (YAW_MAX, PITCH_MAX, ROLL_MAX)
    rot = head_rotation(yaw, pitch, roll)
    distance = rng.uniform(*DISTANCE_RANGE)
    offset_px = rng.uniform(-CENTRE_JITTER, CENTRE_JITTER, 2) * size  # x right, y down
    target = np.array([offset_px[0] * distance / focal, -offset_px[1] * distance / focal, -distance])
    return float(yaw), float(pitch), float(roll), model_to_camera(rot, target - rot @ face_centre)


def _scene(index: int, category: str, nth: int, names: tuple[str, ...], acts: list[str], sided: list[str],
           face_centre: np.ndarray, seed: int) -> Scene:
    """Scene ``index`` of the full set, the ``nth`` of its category; its own random stream keeps it stable."""
    rng = np.random.default_rng([seed, index])
    expression = _expression(category, nth, names, acts, sided, rng)
    width, height = IMAGE_SIZES[int(rng.integers(len(IMAGE_SIZES)))]
    focal = FOCAL_FACTOR * max(width, height)
    yaw, pitch, roll, m2c = _pose(rng, face_centre, np.array([width, height]), focal)
    light = {"azimuth": rng.uniform(-50, 50), "elevation": rng.uniform(10, 45), "energy": rng.uniform(12, 30),
             "world": rng.uniform(0.1, 0.3), "backdrop_hue": rng.uniform(0, 1)}
    identity = rng.standard_normal(IDENTITY_COUNT) * IDENTITY_SCALE
    return Scene(name=f"{index:03d}_{category}", category=category,
                 identity=tuple(np.round(identity, 6).tolist()),
                 expression={k: round(v, 4) for k, v in sorted(expression.items())},
                 yaw=round(yaw, 4), pitch=round(pitch, 4), roll=round(roll, 4),
                 model_to_camera=tuple(tuple(row) for row in np.round(m2c, 7).tolist()),
                 focal_px=round(focal, 4), image_size=(width, height),
                 light={k: round(float(v), 4) for k, v in light.items()})


def make_scenes(names: tuple[str, ...], face_centre: np.ndarray, quick: bool = False,
                seed: int = SEED) -> list[Scene]:
    """The benchmark's scenes (the full set, or its ``--quick`` subset), identical for a given seed.

    ``names``: the model's expression names; ``face_centre``: a head-frame point (m) to aim the camera at.
    """
    rng = np.random.default_rng(seed)
    acts = [str(a) for a in rng.permutation(actions(names))]
    sided = [str(n) for n in rng.permutation([n for n in names if n.endswith(("_L", "_R"))
                                               and not n.startswith("eyeLook")])]
    plan = [(category, nth) for category, count in FULL_PLAN.items() for nth in range(count)]
    return [_scene(index, category, nth, names, acts, sided, face_centre, seed)
            for index, (category, nth) in enumerate(plan) if not quick or nth < QUICK_PLAN[category]]
