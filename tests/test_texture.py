"""Colour lands on the right texels: render a head with a known texture, bake it back from that render."""

import numpy as np
import pytest

from likeness.model.camera import Camera
from likeness.model.geometry import head_rotation
from likeness.appearance.preview import render_view
from likeness.appearance.views import rasterize_head
from likeness.appearance.texture import PhotoView, bake_textures, uv_map


def uv_pattern(size: int) -> np.ndarray:
    """A smooth texture whose colour encodes its own (u, v): red = u, green = v."""
    u = (np.arange(size) + 0.5) / size
    red = np.tile(u, (size, 1))
    green = np.tile(u[::-1, None], (1, size))
    return np.stack([red * 255, green * 255, np.full_like(red, 128)], -1).astype(np.uint8)


@pytest.mark.parametrize("yaw", [0, 30])
def test_bake_recovers_the_texture_that_made_the_photo(ict, yaw):
    size = 256
    face = [m.name for m in ict.materials].index("skin_face")
    truth = {face: uv_pattern(size)}
    cam = Camera(1200.0, (300.0, 300.0), (600, 600))
    verts = ict.vertices() @ head_rotation(yaw, 0, 0).T + [0, 0.01, -0.55]
    photo, shade = render_view(ict, verts, rasterize_head(ict, verts, cam, max_side=600), truth)
    hit = ~np.isnan(shade)
    photo[hit] /= (0.35 + 0.65 * shade[hit])[:, None]  # undo the preview's shading
    photo = np.clip(photo, 0, 255).astype(np.uint8)

    view = PhotoView.build(ict, photo, cam, verts)
    baked = bake_textures(ict, [view], size)[face]
    uvm = uv_map(ict, face, size)
    seen = uvm.texels[uvm.blend @ view.visibility > 0.5]
    assert len(seen) > 0.15 * len(uvm.texels)
    err = np.abs(baked.reshape(-1, 3)[seen].astype(float) - truth[face].reshape(-1, 3)[seen])[:, :2]
    # the well-seen face texels get their own colour back: u and v within a few texels
    assert np.median(err) < 3
    assert np.mean(err.max(1) < 10) > 0.9


def test_unseen_texels_get_the_skin_tone_not_black(ict):
    size = 128
    cam = Camera(1000.0, (200.0, 200.0), (400, 400))
    verts = ict.vertices() + [0, 0, -0.6]
    photo = np.full((400, 400, 3), (180, 120, 100), np.uint8)
    textures = bake_textures(ict, [PhotoView.build(ict, photo, cam, verts)], size)
    head = [m.name for m in ict.materials].index("skin_head")
    back = textures[head]
    assert back.shape == (size, size, 3)
    assert np.abs(back.reshape(-1, 3).astype(int) - (180, 120, 100)).max() <= 2
