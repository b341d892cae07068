"""The speed-ups of the photo → bundle path keep outputs exact: the PNG encoder is lossless, the UV rasterisation
read back from the disk cache equals the computed one, and a damaged cache file is ignored and rewritten."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from likeness.appearance import uvcache
from likeness.appearance.png import encode_png
from likeness.appearance.texture import uv_map


@pytest.mark.parametrize("shape", [(37, 53, 3), (64, 16), (1, 1, 3)])
def test_png_decodes_to_the_same_pixels(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    image[: shape[0] // 2] = 7  # runs, as in textures
    decoded = cv2.imdecode(np.frombuffer(encode_png(image), np.uint8), cv2.IMREAD_UNCHANGED)
    if image.ndim == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    assert decoded.shape == image.shape and (decoded == image).all()


def test_png_refuses_what_it_cannot_encode():
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4), np.float32))


def test_uv_cache_round_trip_and_damaged_file(ict, tmp_path, monkeypatch):
    monkeypatch.setenv("LIKENESS_CACHE_DIR", str(tmp_path))
    uv_map.cache_clear()
    computed = uv_map(ict, 0, 128)
    uvcache.flush()  # written in the background
    files = list((tmp_path / "uv").glob("uv_128_0_*.npz"))
    assert len(files) == 1
    uv_map.cache_clear()
    loaded = uv_map(ict, 0, 128)  # from the file this time
    for name in ("texels", "outside", "nearest", "far"):
        assert np.array_equal(getattr(computed, name), getattr(loaded, name)), name
    assert (computed.blend != loaded.blend).nnz == 0
    files[0].write_bytes(files[0].read_bytes()[:1000])  # truncated, as by a killed writer without the rename
    assert uvcache.load(files[0]) is None
    uv_map.cache_clear()
    again = uv_map(ict, 0, 128)
    uvcache.flush()
    assert np.array_equal(again.texels, computed.texels)
    assert uvcache.load(files[0]) is not None  # rewritten whole
    assert not list((tmp_path / "uv").glob(".*.tmp"))
    uv_map.cache_clear()


@pytest.mark.parametrize("deflate", ["default", "stdlib"])
def test_png_in_parallel_parts_decodes_to_the_same_pixels(monkeypatch, deflate):
    import zlib

    import likeness.appearance.png as png

    monkeypatch.setattr(png, "PARALLEL_BYTES", 1000)  # split even a small image into two deflated halves
    if deflate == "stdlib":  # the fallback where zlib-ng has no wheel
        monkeypatch.setattr(png, "zlib", zlib)
    image = np.random.default_rng(1).integers(0, 256, (101, 77, 3), dtype=np.uint8)
    image[40:60] = 200
    data = png.encode_png(image)
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    assert (decoded == image).all()
    assert (np.asarray(Image.open(io.BytesIO(data))) == image).all()  # a second decoder (checks Adler-32 too)


def test_malloc_tuning_is_once_and_can_be_turned_off(monkeypatch):
    import sys

    import likeness.service.malloc as malloc

    monkeypatch.setattr(malloc, "_done", None)
    monkeypatch.setenv("LIKENESS_MALLOC", "default")
    assert malloc.keep_freed_memory() is False
    monkeypatch.setattr(malloc, "_done", None)
    monkeypatch.delenv("LIKENESS_MALLOC")
    assert malloc.keep_freed_memory() is sys.platform.startswith("linux")  # glibc here
