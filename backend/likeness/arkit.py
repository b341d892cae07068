"""The one table of ARKit's 52 blendshape names, their spellings, and the Live Link Face CSV format.

Standard library only: the Blender add-on loads this very file from the backend source it ships
(``blender_addon/arkit.py``), so the table exists once in the repository.

Spellings of one shape (``style``):

- ``"arkit"``: ARKit's raw values and ICT's names, ``eyeBlink_L``, ``browInnerUp``;
- ``"camel"``: ARKit's Swift constants and MediaPipe's categories, ``eyeBlinkLeft``;
- ``"livelink"``: Live Link Face / Unreal curves, ``EyeBlinkLeft``.

``Left``/``_L`` is the subject's own left everywhere. ICT splits ``browInnerUp`` and ``cheekPuff`` into halves
(``browInnerUp_L``/``_R``; the full shape is their sum, the ARKit weight their mean) and has no ``tongueOut``.

Live Link Face CSV (what the iPhone app records): header ``Timecode,BlendShapeCount,`` then the 52 shapes in
:data:`ARKIT_52` order (Live Link spelling), then :data:`POSE_COLUMNS`; one row per frame; ``BlendShapeCount``
is 61 (52 + 9); the timecode is ``HH:MM:SS:FF.fff`` (frame ``FF`` of the second at the recording rate with a
fractional part). Head and eye angles are radians.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

#: ARKit's 52 shapes (camelCase) in ARKit's / Live Link Face's column order.
ARKIT_52: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawRight", "jawLeft", "jawOpen", "mouthClose",
    "mouthFunnel", "mouthPucker", "mouthRight", "mouthLeft", "mouthSmileLeft", "mouthSmileRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
#: ARKit shapes that ICT splits into a left and a right half (ARKit weight = mean of the halves).
SPLIT = ("browInnerUp", "cheekPuff")
#: Shapes whose Left/Right is a direction of motion, not a side: spelled the same in every style but Live Link's.
DIRECTIONAL = ("jawLeft", "jawRight", "mouthLeft", "mouthRight")
#: Head rotation (yaw, pitch, roll) and per-eye rotation columns after the shapes, radians.
POSE_COLUMNS: tuple[str, ...] = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                                 "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
BLENDSHAPE_COUNT = len(ARKIT_52) + len(POSE_COLUMNS)  # 61
#: Eyeball rotation (degrees) that eyeLook* weight 1 stands for: sideways (In/Out) and up or down.
EYE_LOOK_YAW_DEG = 30.0
EYE_LOOK_PITCH_DEG = 25.0
STYLES = ("arkit", "camel", "livelink")
#: Timecode frame rates a reader recognises (Hz).
RATES = (24, 25, 30, 48, 50, 60, 120)
_SIDE = re.compile(r"(?:[_.\- ]?(left|right|l|r))$", re.IGNORECASE)


def spell(name: str, style: str) -> str:
    """A camelCase ARKit name in another spelling: ``spell("eyeBlinkLeft", "arkit") == "eyeBlink_L"``."""
    if style == "camel":
        return name
    if style == "livelink":
        return name[0].upper() + name[1:]
    if style == "arkit":
        return name if name in DIRECTIONAL else re.sub(r"(Left|Right)$", lambda m: "_" + m.group(1)[0], name)
    raise ValueError(f"unknown ARKit spelling {style!r}; use one of {STYLES}")


def canonical(name: str) -> str | None:
    """The camelCase ARKit name of any spelling (``EyeBlinkLeft``, ``eyeBlink_L``, ``eyeblink.l``), or None.

    ICT's halves (``browInnerUp_L``) are not ARKit shapes and give None; see :func:`ict_sources`.
    """
    if name.lower() in _BY_KEY:
        return _BY_KEY[name.lower()]
    match = _SIDE.search(name)
    stem, side = (name[:match.start()], match.group(1).lower()) if match else (name, "")
    if stem.lower() in {"browinnerup", "cheekpuff"} and side:
        return None
    key = (stem + {"l": "left", "r": "right"}.get(side, side)).lower()
    return _BY_KEY.get(key)


def ict_sources(arkit: str) -> tuple[str, ...]:
    """ICT name(s) whose mean is the ARKit weight: ``eyeBlinkLeft`` → ``("eyeBlink_L",)``, ``cheekPuff`` →
    both halves, ``tongueOut`` → ``("tongueOut",)`` (a shape ICT lacks: callers treat a missing name as 0)."""
    raw = spell(arkit, "arkit")
    return (raw + "_L", raw + "_R") if arkit in SPLIT else (raw,)


def arkit_weights(weights: dict[str, float]) -> dict[str, float]:
    """ICT-named weights → all 52 ARKit weights (camelCase keys): halves averaged, missing shapes 0."""
    return {name: sum(weights.get(src, 0.0) for src in ict_sources(name)) / len(ict_sources(name))
            for name in ARKIT_52}


def timecode(seconds: float, fps: float) -> str:
    """Live Link Face timecode ``HH:MM:SS:FF.fff`` of a time in seconds at ``fps`` frames per second."""
    whole = math.floor(seconds + 1e-9)
    frame = max(seconds - whole, 0.0) * fps
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}:{frame:06.3f}"


def parse_timecode(text: str, fps: float) -> float:
    """Seconds of a ``HH:MM:SS:FF[.fff]`` timecode at ``fps`` (``FF`` may carry a fraction)."""
    hours, minutes, secs, frames = text.strip().split(":")
    return int(hours) * 3600 + int(minutes) * 60 + int(secs) + float(frames) / fps


def write_livelink_csv(path: str | Path, times_s: list[float], shapes: list[dict[str, float]],
                       poses: list[dict[str, float]] | None = None, fps: float = 60.0) -> Path:
    """Write a Live Link Face CSV: per frame its time (s), its ARKit weights (camelCase keys, missing = 0) and
    optionally its pose columns (:data:`POSE_COLUMNS` keys, radians, missing = 0)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["Timecode", "BlendShapeCount", *(spell(n, "livelink") for n in ARKIT_52), *POSE_COLUMNS])
        for k, (t, weights) in enumerate(zip(times_s, shapes, strict=True)):
            pose = poses[k] if poses else {}
            out.writerow([timecode(t, fps), BLENDSHAPE_COUNT, *(f"{weights.get(n, 0.0):.6g}" for n in ARKIT_52),
                          *(f"{pose.get(c, 0.0):.6g}" for c in POSE_COLUMNS)])
    tmp.replace(path)
    return path


def timecode_rate(timecodes: list[str], default: float = 60.0) -> float:
    """The frame rate of timecodes ``HH:MM:SS:FF.fff``: the first of :data:`RATES` above every ``FF`` seen, once
    the take holds a whole second (three distinct seconds); else ``default``."""
    parts = [t.strip().split(":") for t in timecodes]
    seconds = {(int(h), int(m), int(sec)) for h, m, sec, _ in parts}
    above = [r for r in RATES if r > max(int(float(p[3])) for p in parts)]
    return float(above[0]) if above and len(seconds) >= 3 else default


def read_livelink_csv(path: str | Path, fps: float | None = None,
                      default_fps: float = 60.0) -> tuple[list[float], dict[str, list[float]]]:
    """Times (s, from the timecodes, starting at 0) and columns of a Live Link Face CSV. The timecodes' frame rate
    is ``fps``, or found from them (:func:`timecode_rate`, ``default_fps`` for takes shorter than that needs).

    Columns are keyed by camelCase ARKit name for shapes and by :data:`POSE_COLUMNS` name for angles; columns
    the reader does not know are kept under their header. Raises ValueError when it is not such a file.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows or not rows[0] or rows[0][0].strip() != "Timecode":
        raise ValueError(f"{Path(path).name} is not a Live Link Face CSV (its first column is not 'Timecode').")
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if len(r) == len(header)]
    if not body:
        raise ValueError(f"{Path(path).name} has no complete rows.")
    rate = fps or timecode_rate([r[0] for r in body], default_fps)
    times = [parse_timecode(r[0], rate) for r in body]
    columns: dict[str, list[float]] = {}
    for i, name in enumerate(header[1:], start=1):
        if name == "BlendShapeCount":
            continue
        columns[canonical(name) or name] = [float(r[i]) for r in body]
    return [t - times[0] for t in times], columns


_BY_KEY = {name.lower(): name for name in ARKIT_52}
