"""Words → a light: ``"warm sunset from the left"`` becomes 2nd-order SH shading coefficients (9,3), head frame.

No torch. Used by text relighting (``likeness edit --what light``, where it is the starting light that score
distillation may refine) and by ``likeness relight --light "..."`` for a quick look.

Conventions (docs/bundle.md): head frame +X the subject's own left, +Y up, +Z out of the face; ``left`` and
``right`` are the **subject's** sides, as in ``likeness relight --light left``. Colours are linear RGB factors;
the brightest shading over all directions is about 1 (a surface facing the key light shows its albedo).
"""

from __future__ import annotations

import re

import numpy as np

from ..appearance import light as sh
from ..errors import BadInput

#: direction words → direction towards the light (head frame); several add up ("top left").
DIRECTIONS = {
    "left": (1.0, 0.0, 0.0), "right": (-1.0, 0.0, 0.0), "top": (0.0, 1.0, 0.0), "above": (0.0, 1.0, 0.0),
    "overhead": (0.0, 1.0, 0.0), "below": (0.0, -1.0, 0.0), "under": (0.0, -1.0, 0.0), "bottom": (0.0, -1.0, 0.0),
    "front": (0.0, 0.0, 1.0), "frontal": (0.0, 0.0, 1.0), "behind": (0.0, 0.0, -1.0), "back": (0.0, 0.0, -1.0),
    "rim": (0.0, 0.2, -1.0), "side": (1.0, 0.0, 0.2),
}
#: colour words → linear RGB of the key light (normalised so the largest channel is 1).
COLOURS = {
    "warm": (1.0, 0.78, 0.55), "sunset": (1.0, 0.6, 0.32), "golden": (1.0, 0.75, 0.4), "candle": (1.0, 0.55, 0.25),
    "candlelight": (1.0, 0.55, 0.25), "fire": (1.0, 0.5, 0.2), "tungsten": (1.0, 0.7, 0.45),
    "cool": (0.75, 0.85, 1.0), "cold": (0.7, 0.82, 1.0), "blue": (0.45, 0.6, 1.0), "moonlight": (0.6, 0.72, 1.0),
    "moon": (0.6, 0.72, 1.0), "overcast": (0.9, 0.95, 1.0), "daylight": (1.0, 0.98, 0.95), "noon": (1.0, 1.0, 0.97),
    "red": (1.0, 0.25, 0.2), "green": (0.3, 1.0, 0.35), "purple": (0.7, 0.35, 1.0), "pink": (1.0, 0.55, 0.75),
    "neon": (1.0, 0.3, 0.8), "white": (1.0, 1.0, 1.0), "studio": (1.0, 1.0, 1.0),
}
#: mood words → (key strength, ambient).
MOODS = {
    "soft": (0.55, 0.45), "diffuse": (0.45, 0.55), "overcast": (0.35, 0.65), "flat": (0.25, 0.75),
    "hard": (0.95, 0.08), "harsh": (0.95, 0.05), "dramatic": (1.0, 0.05), "moody": (0.85, 0.08),
    "noir": (1.0, 0.02), "dim": (0.45, 0.1), "bright": (0.9, 0.35),
}
#: presets for common phrases; a prompt's own words override their parts.
PRESETS = {
    "sunset": "warm hard side", "golden hour": "golden side", "studio": "studio soft front top",
    "moonlight": "moonlight dim top side", "candlelight": "candle dim front below", "noon": "noon hard top",
}
DEFAULT_DIRECTION = (0.0, 0.3, 1.0)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def understood(text: str) -> bool:
    """Whether ``text`` names any light direction, colour or mood this module knows."""
    vocab = set(DIRECTIONS) | set(COLOURS) | set(MOODS)
    return any(w in vocab for w in words(text)) or any(p in text.lower() for p in PRESETS)


def light_from_text(text: str) -> np.ndarray:
    """The SH light (9,3), head frame, that ``text`` describes (see the module's word lists).

    Unknown words are ignored; an empty ``text`` or one without a single known word raises :class:`BadInput`.
    """
    if not text or not text.strip():
        raise BadInput("The light description is empty.", "Describe the light, e.g. 'warm sunset from the left'.")
    if not understood(text):
        raise BadInput(f"No light direction, colour or mood was recognised in {text!r}.",
                       "Use words such as left, right, top, front, behind, warm, cool, sunset, soft, hard.")
    lowered = text.lower()
    found = words(lowered)
    for phrase, expansion in PRESETS.items():  # a preset's words come first, the prompt's own words win
        if phrase in lowered:
            found = words(expansion) + found
    direction = np.zeros(3)
    for w in found:
        if w in DIRECTIONS:
            direction += DIRECTIONS[w]
    if "side" in found and any(w in ("left", "right") for w in found):
        direction -= DIRECTIONS["side"]  # "from the right side": the side word only names a side
    if np.linalg.norm(direction) < 1e-6:
        direction = np.array(DEFAULT_DIRECTION)
    direction = direction / np.linalg.norm(direction) + np.array([0.0, 0.15, 0.25])  # a little above and ahead
    colour = np.ones(3)
    for w in found:
        if w in COLOURS:
            colour = np.asarray(COLOURS[w], np.float64)
    strength, ambient = 0.8, 0.25
    for w in found:
        if w in MOODS:
            strength, ambient = MOODS[w]
    key = sh.directional(direction, strength=strength, ambient=0.0) * colour[None, :]
    fill = np.zeros((9, 3))
    fill[0] = ambient / 0.282095 * (0.5 + 0.5 * colour)  # the ambient is a paler version of the key's colour
    light = key + fill
    peak = sh.shading(light, sh.sphere_directions(32)).max()
    return light / max(float(peak), 1e-6)
