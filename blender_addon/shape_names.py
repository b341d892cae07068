"""Shape-key naming of Likeness heads: ICT's names or ARKit's 52 in one of its spellings (preference).

ICT splits ``browInnerUp`` and ``cheekPuff`` into halves. With an ARKit naming the halves keep their own keys
(``browInnerUpLeft`` ...) and a *whole* key is added for each (its shape is the sum of the halves), so a rig or
an exporter finds all ARKit names but ``tongueOut``: ICT has no separate tongue geometry to move (its tongue is
one mesh with the gums), so no ``tongueOut`` key is made. Animation from tracks keys the halves and leaves the
whole key at 0 (see :func:`~.animation.animate_shape_keys`), so nothing moves twice.
"""

from __future__ import annotations

import bpy
import numpy as np

from . import paths
from .animation import _HALF
from .arkit import TABLE

STYLE_ITEMS = [
    ("ict", "ICT (eyeBlink_L, split brows/cheeks)",
     "ICT Face Model names: 53 keys, browInnerUp and cheekPuff in halves"),
    ("arkit", "ARKit (eyeBlink_L)", "ARKit's raw names, with whole browInnerUp and cheekPuff keys added"),
    ("camel", "ARKit camelCase (eyeBlinkLeft)", "ARKit's Swift/MediaPipe names, whole browInnerUp/cheekPuff added"),
    ("livelink", "Live Link Face (EyeBlinkLeft)", "Unreal Live Link Face curve names, whole keys added"),
]


def preferred_style() -> str:
    """The shape-key naming chosen in the add-on preferences (``ict`` when they are not available)."""
    addon = bpy.context.preferences.addons.get(paths.ADDON_PACKAGE)
    return getattr(addon.preferences, "shape_key_names", "ict") if addon else "ict"


def key_name(ict: str, style: str) -> str:
    """The shape-key name of an ICT expression in a naming style (:data:`STYLE_ITEMS`)."""
    if style == "ict":
        return ict
    match = _HALF.match(ict)
    if match:
        return TABLE.spell(match.group(1) + ("Left" if match.group(2)[0].upper() == "L" else "Right"), style)
    name = TABLE.canonical(ict)
    return TABLE.spell(name, style) if name else ict


def apply_naming(obj: bpy.types.Object, style: str) -> None:
    """Rename the expression keys of a Likeness head (``likeness_expression_names``, in key order after the
    basis) to ``style``; ARKit styles also get whole browInnerUp/cheekPuff keys (value 0)."""
    names = list(obj.get("likeness_expression_names", []))
    blocks = obj.data.shape_keys.key_blocks
    for i, ict in enumerate(names):
        blocks[1 + i].name = key_name(ict, style)
    extra = {TABLE.canonical(b.name): b for b in list(blocks)[1 + len(names):] if TABLE.canonical(b.name)}
    for stem in TABLE.SPLIT:
        if stem in extra:
            extra[stem].name = TABLE.spell(stem, "arkit" if style == "ict" else style)
        elif style != "ict":
            _whole_key(obj, TABLE.spell(stem, style), [1 + names.index(h) for h in TABLE.ict_sources(stem)])


def _whole_key(obj: bpy.types.Object, name: str, halves: list[int]) -> None:
    """A new shape key ``name`` whose offset from the basis is the sum of the keys at indices ``halves``."""
    blocks = obj.data.shape_keys.key_blocks
    n = len(obj.data.vertices)

    def co(block: bpy.types.ShapeKey) -> np.ndarray:
        out = np.empty(n * 3, np.float32)
        block.data.foreach_get("co", out)
        return out

    basis = co(blocks[0])
    key = obj.shape_key_add(name=name, from_mix=False)
    key.data.foreach_set("co", basis + sum(co(blocks[i]) - basis for i in halves))
    key.slider_min, key.slider_max, key.value = 0.0, 1.0, 0.0
