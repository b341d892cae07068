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
