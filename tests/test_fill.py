"""likeness.appearance.fill: unseen texels continue the seen colour beside them, fading to the average, then the
prior."""

import numpy as np

from likeness.appearance.fill import smooth_fill


def test_unseen_texels_continue_the_colour_beside_them():
    size = 512
    colour = np.zeros((size, size, 3), np.float32)
    colour[:, :, 0] = np.linspace(0.2, 0.8, size)[:, None]  # red varies from top to bottom
    colour[:, :, 1] = 0.4
    weight = np.zeros((size, size), np.float32)
    weight[:, :200] = 1.0  # only the left part is seen
    filled = smooth_fill(colour * weight[..., None], weight, prior=np.array([0.0, 0.0, 1.0]))
    # just right of the seen part, each row keeps its own red: the top stays darker than the bottom
    near = filled[:, 210, 0]
    assert abs(near[20] - colour[20, 0, 0]) < 0.05 and abs(near[-20] - colour[-20, 0, 0]) < 0.05
    assert np.all(np.abs(filled[:, 200:, 1] - 0.4) < 0.02)  # green is 0.4 wherever seen: so is its fill
    # far away it fades towards the average red (0.5, the middle row's own); the prior (blue) barely shows where
    # more than a third is seen
    assert abs(filled[size // 2, -1, 0] - 0.5) < 0.12
    assert np.all(np.abs(np.diff(filled[:, 200:, 0], axis=1)) < 0.01)  # smooth: no seam, no step
    assert filled[:, :, 2].max() < 0.1
    # the seen part itself comes back (smoothed by the working size only)
    assert np.abs(filled[:, :180, 0] - colour[:, :180, 0]).max() < 0.02


def test_nothing_seen_gives_the_prior():
    filled = smooth_fill(np.zeros((64, 64, 3), np.float32), np.zeros((64, 64), np.float32),
                         prior=np.array([0.7, 0.5, 0.4]))
    assert np.allclose(filled, [0.7, 0.5, 0.4], atol=1e-4)


def test_single_channel_and_non_square():
    weight = np.zeros((40, 100), np.float32)
    weight[:, :10] = 1.0
    filled = smooth_fill(np.where(weight > 0, 0.3, 0.0).astype(np.float32)[..., None], weight, prior=np.array([1.0]))
    assert filled.shape == (40, 100, 1)
    assert np.all(np.abs(filled[:, :15, 0] - 0.3) < 0.03)  # beside the seen strip: its colour
    # far from it the prior (1.0) counts as 2 % of the texture against the 10 % seen: (0.03 + 0.02) / 0.12
    assert np.all(filled[..., 0] > 0.29) and np.all(filled[..., 0] < 0.3 + 0.13)


def test_texture_fill_matches_the_image_fill_on_a_texture_given_as_texels():
    from likeness.appearance.fill import fill_grid, texture_fill

    size = 1024
    texels = np.arange(size * size)[(np.arange(size * size) % 7) != 3]  # islands need not cover the square
    row, col = np.divmod(texels, size)
    weight = (col < 300).astype(np.float32)
    colour = np.stack([50 + 150 * row / size, np.full(len(row), 100.0), np.zeros(len(row))], axis=1).astype(np.float32)
    grid = fill_grid(texels, size)
    image = texture_fill(grid, (colour * weight[:, None])[grid.sample], weight[grid.sample], np.zeros(3))
    assert image.shape == (size, size, 4) and image.dtype == np.uint8 and np.all(image[..., 3] == 255)
    got = image.reshape(-1, 4)[texels, :3].astype(float)
    inner = (row > 16) & (row < size - 16)  # the texture's own edges blur a little more
    near = (col > 300) & (col < 320) & inner  # just beside the seen part: about each row's own red, green 100
    assert np.all(np.abs(got[near, 0] - colour[near, 0]) < 16) and np.all(np.abs(got[near, 1] - 100) < 3)
    assert np.all(np.abs(got[(col < 280) & inner] - colour[(col < 280) & inner]) < 10)
    far = col > 900  # far away: between the seen reds, nearer the middle
    assert np.all((got[far, 0] > 60) & (got[far, 0] < 190))
