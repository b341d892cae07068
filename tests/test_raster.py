import numpy as np

from likeness.appearance.raster import rasterize, vertex_normals


def test_two_triangles_cover_a_square_exactly_once():
    square = np.array([[[2, 2], [8, 2], [8, 8]], [[2, 2], [8, 8], [2, 8]]], float)
    tri, bary = rasterize(square, 10, 10)
    covered = tri >= 0
    assert covered.sum() == 36 and covered[2:8, 2:8].all()
    np.testing.assert_allclose(bary[covered].sum(1), 1, atol=1e-6)


def test_depth_keeps_the_nearest_triangle():
    tri = np.array([[[0, 0], [10, 0], [0, 10]], [[0, 0], [10, 0], [0, 10]]], float)
    ids, _ = rasterize(tri, 10, 10, depth=np.array([[2.0, 2, 2], [1.0, 1, 1]]))
    assert set(np.unique(ids[ids >= 0])) == {1}


def test_barycentrics_interpolate_positions():
    tri = np.array([[[0, 0], [100, 0], [0, 100]]], float)
    ids, bary = rasterize(tri, 100, 100)
    rows, cols = np.nonzero(ids >= 0)
    pos = np.einsum("nk,kd->nd", bary[rows, cols], tri[0])
    np.testing.assert_allclose(pos, np.stack([cols + 0.5, rows + 0.5], 1), atol=1e-3)


def test_vertex_normals_point_outward():
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    np.testing.assert_allclose(vertex_normals(verts, np.array([[0, 1, 2]])), [[0, 0, 1]] * 3)


def test_covering_in_parallel_parts_gives_the_same_pixels_and_weights():
    """Overlapping triangles at random depths, some sharing a depth (ties): split into parts covered in threads and
    merged in order, the nearest triangle of every pixel and its weights are those of one pass."""
    rng = np.random.default_rng(5)
    centres = rng.uniform(0, 64, (400, 1, 2))
    corners = centres + rng.normal(0, 4, (400, 3, 2))
    depth = rng.choice([1.0, 2.0, 3.0], (400, 1)) + rng.uniform(0, 0.5, (400, 3)) * (rng.random((400, 1)) < 0.5)
    one, one_bary = rasterize(corners, 64, 64, depth=depth)
    assert (one >= 0).mean() > 0.5
    for parts in (2, 3):
        split, split_bary = rasterize(corners, 64, 64, depth=depth, parts=parts)
        np.testing.assert_array_equal(split, one)
        np.testing.assert_array_equal(split_bary, one_bary)
