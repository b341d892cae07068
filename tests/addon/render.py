"""Small Cycles CPU renders for the add-on tests (EEVEE and Workbench need EGL, absent here)."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from PIL import Image


def render_cycles(scene: bpy.types.Scene, camera: bpy.types.Object, path: Path, size: int = 96,
                  samples: int = 8, transparent: bool = True) -> np.ndarray:
    """Render ``scene`` from ``camera`` at ``size`` px on the long side; RGBA float pixels in [0, 1]."""
    render = scene.render
    render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    render.film_transparent = transparent
    scene.view_settings.view_transform = "Standard"  # pixel values comparable with photos (no AgX tone curve)
    aspect = render.resolution_x / render.resolution_y
    render.resolution_x, render.resolution_y = (size, round(size / aspect)) if aspect >= 1 else \
        (round(size * aspect), size)
    render.resolution_percentage = 100
    render.threads_mode, render.threads = "FIXED", 2
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGBA"
    render.filepath = str(path)
    scene.camera = camera
    bpy.ops.render.render(write_still=True)
    return np.asarray(Image.open(path).convert("RGBA"), dtype=np.float32) / 255.0
