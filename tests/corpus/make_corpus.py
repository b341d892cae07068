"""The bad-input corpus: photos and jobs that real users send, generated at test time (nothing binary committed).

Every :class:`Case` writes its photos into a folder and says what ``likeness reconstruct`` must do with them:
the exit status (0 done, 2 a problem the user can fix) and a substring of the message on stderr (the error, or
a warning of a finished job). Faces come from the public-domain astronaut portrait that ships with
scikit-image, and (for the two-person cases) from the dev photos in ../shared; nothing is copied into the repo.

Run ``python tests/corpus/make_corpus.py DIR`` to write every case into ``DIR/<case>/`` and look at them.
"""

from __future__ import annotations

import struct
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from shared_paths import DEV_IMAGES, find_ict_model

#: EXIF orientation → the transpose that stores an upright image so that viewers turn it back upright.
STORE_TRANSPOSE = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                   4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
                   7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}
#: A dev photo of someone whose fitted identity is far from the astronaut's (7.1 against 5.0, likeness.capture.checks),
#: and two dev photos of one person (neutral, smiling).
OTHER_PERSON = "dev_014_london_038_03.jpg"
SAME_PERSON = ("dev_000_london_002_03.jpg", "dev_001_london_002_08.jpg")


def astronaut() -> Image.Image:
    """The astronaut portrait (512×512 RGB, public domain)."""
    import skimage.data

    return Image.fromarray(skimage.data.astronaut())


def portrait() -> Image.Image:
    """The astronaut's head and shoulders (480×480, the face about 200 px wide)."""
    return astronaut().crop((90, 0, 330, 240)).resize((480, 480), Image.LANCZOS)


class Unavailable(Exception):
    """A source photo the case needs is not there (the dev photos live outside the repository)."""


def dev(name: str) -> Image.Image:
    path = DEV_IMAGES / name
    if not path.is_file():
        raise Unavailable(f"dev photo {path} is not available")
    return Image.open(path).convert("RGB")


Build = Callable[[Path], list[Path]]


@dataclass(frozen=True)
class Case:
    """One corpus entry: ``build(folder)`` writes the photos and returns their paths (in job order)."""

    name: str
    build: Build
    exit_code: int
    message: str  # a substring of stderr
    output: str = "out"  # the bundle folder, relative to the case folder (or absolute)
    fault: str = ""  # LIKENESS_FAULT for the run
    subprocess: bool = False  # run `python -m likeness` as a real process (else in-process)
    absent: str = ""  # a substring stderr must NOT contain
    texture_size: int = 64
    lens_mm: float | None = None  # ``--lens``
    needs_non_root: bool = False  # root may write into read-only folders


def _save(img: Image.Image, path: Path, **options) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **options)
    return [path]


def _face(name: str = "face.jpg", **options) -> Build:
    return lambda d: _save(astronaut(), d / name, **({"quality": 92} | options))


def _bytes(name: str, data: bytes) -> Build:
    def build(d: Path) -> list[Path]:
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
        return [d / name]
    return build


def _truncated(fmt: str) -> Build:
    def build(d: Path) -> list[Path]:
        path = _save(astronaut(), d / f"cut.{fmt}")[0]
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return [path]
    return build


def _converted(mode: str, name: str, **options) -> Build:
    return lambda d: _save(astronaut().convert(mode), d / name, **options)


def _rgba(d: Path) -> list[Path]:
    img = astronaut().convert("RGBA")
    alpha = np.full(img.size[::-1], 255, np.uint8)
    alpha[:, :60] = 0  # a transparent strip at the left
    img.putalpha(Image.fromarray(alpha))
    return _save(img, d / "alpha.png")


def _grey16(d: Path) -> list[Path]:
    grey = np.asarray(astronaut().convert("L")).astype(np.uint16) * 257
    return _save(Image.fromarray(grey), d / "grey16.png")


def _rgb16(d: Path) -> list[Path]:
    rgb = np.asarray(astronaut()).astype(np.uint16) * 257
    d.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(d / "rgb16.png"), rgb[..., ::-1])
    return [d / "rgb16.png"]


def exif_rotated(orientation: int) -> Build:
    """The portrait (480×400 upright) stored turned/flipped, with the EXIF orientation that shows it upright."""
    def build(d: Path) -> list[Path]:
        img, exif = portrait().crop((0, 0, 480, 400)), Image.Exif()
        if STORE_TRANSPOSE[orientation] is not None:
            img = img.transpose(STORE_TRANSPOSE[orientation])
        exif[0x0112] = orientation
        return _save(img, d / f"orientation_{orientation}.jpg", exif=exif, quality=95)
    return build


def _huge(d: Path) -> list[Path]:
    """12000×9000 px (108 megapixels, over Pillow's 89-megapixel warning limit) with the face in the middle."""
    canvas = Image.new("RGB", (12000, 9000), (118, 112, 105))
    canvas.paste(portrait().resize((6000, 6000), Image.BILINEAR), (3000, 1500))
    return _save(canvas, d / "huge.jpg", quality=80)


def _bomb(d: Path) -> list[Path]:
    """A PNG whose header claims 30000×30000 px (900 megapixels): a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))
    return _bytes("bomb.png", data)(d)


def _on_canvas(size: tuple[int, int], box: tuple[int, int, int], name: str) -> Build:
    """The portrait resized to ``box[2]`` px and pasted at ``box[:2]`` on a grey canvas of ``size``."""
    def build(d: Path) -> list[Path]:
        canvas = Image.new("RGB", size, (120, 120, 120))
        canvas.paste(portrait().resize((box[2], box[2]), Image.LANCZOS), box[:2])
        return _save(canvas, d / name, quality=92)
    return build


def _no_face(d: Path) -> list[Path]:
    y, x = np.mgrid[0:480, 0:640]
    pattern = (127 + 60 * np.sin(x / 17.0) * np.cos(y / 23.0))[..., None] * np.array([1.0, 0.9, 0.7])
    return _save(Image.fromarray(pattern.astype(np.uint8)), d / "wall.jpg", quality=90)


def _several(d: Path) -> list[Path]:
    canvas = Image.new("RGB", (800, 480), (120, 120, 120))
    canvas.paste(portrait(), (0, 0))
    canvas.paste(portrait().resize((280, 280)).transpose(Image.Transpose.FLIP_LEFT_RIGHT), (500, 120))
    return _save(canvas, d / "group.jpg", quality=92)


def _keystone(d: Path) -> list[Path]:
    """The face photographed at an angle to the print: one side squeezed by a perspective warp."""
    rgb = np.asarray(portrait())
    h, w = rgb.shape[:2]
    src = np.float32([[150, 100], [390, 100], [390, 400], [150, 400]])
    dst = np.float32([[200, 80], [300, 125], [300, 375], [200, 420]])
    warped = cv2.warpPerspective(rgb, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=(120, 120, 120))
    return _save(Image.fromarray(warped), d / "keystone.jpg", quality=92)


@lru_cache(maxsize=1)
def _portrait_head() -> tuple:
    """The head Likeness reconstructs from :func:`portrait`: (model, neutral vertices, textures by material)."""
    from likeness.service.bundle import read_bundle
    from likeness.service.pipeline import Engine, ReconstructRequest

    model_path = find_ict_model()
    if model_path is None:
        raise Unavailable("no ICT head model to render a turned head with")
    with tempfile.TemporaryDirectory() as tmp:
        portrait().save(Path(tmp) / "portrait.jpg", quality=95)
        engine = Engine()
        engine.reconstruct(ReconstructRequest(photos=[str(Path(tmp) / "portrait.jpg")], output=f"{tmp}/head",
                                              texture_size=512, model=str(model_path)))
        manifest, arrays = read_bundle(f"{tmp}/head")
        textures = {i: np.asarray(Image.open(Path(tmp) / "head" / m["textures"]["base_color"]).convert("RGB"))
                    for i, m in enumerate(manifest["materials"]) if m["textures"]}
        return engine.model(str(model_path))[0], arrays["vertices"], textures


def _turned(yaw_deg: float) -> Build:
    """A render of the reconstructed portrait head turned ``yaw_deg`` to the side (a real 3D turn, no hair)."""
    def build(d: Path) -> list[Path]:
        from likeness.model.camera import Camera
        from likeness.model.geometry import head_rotation
        from likeness.appearance.preview import render_view
        from likeness.appearance.views import rasterize_head

        model, vertices, textures = _portrait_head()
        camera = Camera(700.0, (240.0, 240.0), (480, 480))
        posed = vertices @ head_rotation(yaw_deg, 0, 0).T + np.array([0.0, 0.02, -0.6])
        color, shade = render_view(model, posed, rasterize_head(model, posed, camera, 480), textures)
        image = np.where(np.isnan(shade)[..., None], 120.0, color).astype(np.uint8)
        return _save(Image.fromarray(image), d / f"turned_{yaw_deg:g}.jpg", quality=92)
    return build


def _screen(d: Path) -> list[Path]:
    """The face photographed off a monitor: bezel, keystone, moiré, RGB sub-pixel stripes, a blue cast."""
    rgb = np.asarray(portrait().resize((512, 512))).astype(np.float64)
    y, x = np.mgrid[0:rgb.shape[0], 0:rgb.shape[1]]
    moire = 0.8 + 0.2 * np.sin(2 * np.pi * (0.37 * x + 0.11 * y)) * np.sin(2 * np.pi * 0.013 * (x - y))
    stripes = np.stack([(x % 3 == c) * 0.25 + 0.75 for c in range(3)], axis=-1)
    screen = np.clip(rgb * moire[..., None] * stripes * np.array([0.85, 0.95, 1.15]), 0, 255).astype(np.uint8)
    frame = np.full((640, 760, 3), 15, np.uint8)
    src = np.float32([[0, 0], [511, 0], [511, 511], [0, 511]])
    dst = np.float32([[130, 70], [640, 95], [625, 570], [120, 585]])
    warped = cv2.warpPerspective(screen, cv2.getPerspectiveTransform(src, dst), (760, 640))
    mask = cv2.warpPerspective(np.full((512, 512), 255, np.uint8), cv2.getPerspectiveTransform(src, dst), (760, 640))
    frame[mask > 0] = warped[mask > 0]
    return _save(Image.fromarray(frame), d / "screen.jpg", quality=88)


def _unicode(d: Path) -> list[Path]:
    (d / "résultat 結果").mkdir(parents=True)
    return _face("Фото 写真 café.jpg")(d / "my photos ü")


def _twice(d: Path) -> list[Path]:
    path = _face()(d)[0]
    return [path, path]


def _copy(d: Path) -> list[Path]:
    a, b = _face("a.jpg")(d)[0], d / "b.jpg"
    b.write_bytes(a.read_bytes())
    return [a, b]


def _mixed(d: Path) -> list[Path]:
    return _face("astronaut.jpg")(d) + _save(dev(OTHER_PERSON), d / "other.jpg", quality=92)


def _same_person(d: Path) -> list[Path]:
    return [p for i, name in enumerate(SAME_PERSON) for p in _save(dev(name), d / f"{i}.jpg", quality=92)]


def _folder(d: Path) -> list[Path]:
    (d / "photos").mkdir(parents=True)
    return [d / "photos"]


def _with(build: Build, prepare: Callable[[Path], None]) -> Build:
    def run(d: Path) -> list[Path]:
        photos = build(d)
        prepare(d)
        return photos
    return run


def _read_only(d: Path) -> None:
    (d / "locked").mkdir()
    (d / "locked").chmod(0o555)


CANNOT_READ = "is not an image that can be read"
CASES: list[Case] = [
    # files that are not (whole) images
    Case("not_an_image", _bytes("notes.jpg", b"Dear diary, today I took a photo.\n"), 2, CANNOT_READ, subprocess=True),
    Case("empty_file", _bytes("empty.jpg", b""), 2, "is empty (0 bytes)", subprocess=True),
    Case("truncated_jpeg", _truncated("jpg"), 2, "truncated", subprocess=True),
    Case("truncated_png", _truncated("png"), 2, CANNOT_READ),
    Case("html_saved_as_jpg", _bytes("page.jpg", b"<!doctype html><html><body>404</body></html>"), 2, CANNOT_READ),
    Case("svg", _bytes("face.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><circle r="5"/></svg>'), 2,
         CANNOT_READ),
    Case("heic_header_only", _bytes("face.heic", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64), 2,
         CANNOT_READ),
    Case("folder_instead_of_photo", _folder, 2, "is a folder, not a photo"),
    Case("missing_photo", lambda d: [d / "nowhere.jpg"], 2, "does not exist"),
    Case("decompression_bomb", _bomb, 2, "too large to read safely"),
    # images in unusual formats: read as 8-bit RGB
    Case("cmyk_jpeg", _converted("CMYK", "cmyk.jpg", quality=92), 0, "Bundle written"),
    Case("png_16bit_grey", _grey16, 0, "Bundle written"),
    Case("png_16bit_rgb", _rgb16, 0, "Bundle written"),
    Case("greyscale_jpeg", _converted("L", "grey.jpg", quality=92), 0, "Bundle written"),
    Case("grey_alpha_png", _converted("LA", "grey_alpha.png"), 0, "Bundle written"),
    Case("alpha_png", _rgba, 0, "Bundle written"),
    Case("palette_png", _converted("P", "palette.png"), 0, "Bundle written"),
    Case("webp", _face("face.webp", quality=90), 0, "Bundle written"),
    Case("png_named_jpg", _face("actually_png.jpg", format="PNG"), 0, "Bundle written"),
    *[Case(f"exif_orientation_{o}", exif_rotated(o), 0, "Bundle written") for o in range(1, 9)],
    Case("huge_12000x9000", _huge, 0, "Bundle written"),  # as a process in test_corpus.py's memory test
    # faces the fit may not handle well: a result with a warning, or a clear refusal
    Case("tiny_face_in_a_big_photo", _on_canvas((1600, 1200), (760, 560, 100), "tiny.jpg"), 2,
         "crop around the face"),
    Case("small_face", lambda d: _save(portrait().resize((120, 120)), d / "small.jpg", quality=92), 0,
         "is small"),
    Case("no_face", _no_face, 2, "No face was found"),
    Case("several_faces", _several, 0, "faces were found"),
    Case("perspective_distorted", _keystone, 0, "Bundle written"),
    Case("turned_head_60deg", _turned(60), 0, "sideways"),
    Case("profile_view_85deg", _turned(85), 2, "No face was found"),
    Case("face_on_a_screen", _screen, 0, "Bundle written"),
    # paths and output folders
    Case("unicode_and_spaces_in_paths", _unicode, 0, "Bundle written", output="résultat 結果/mon bündle",
         subprocess=True),
    Case("output_exists", _with(_face(), lambda d: (d / "out").mkdir()), 2, "already exists"),
    Case("output_parent_missing", _face(), 2, "does not exist", output="no/such/folder/out"),
    Case("read_only_output_folder", _with(_face(), _read_only), 2, "not writable", output="locked/out",
         needs_non_root=True),
    Case("read_only_filesystem", _face(), 2, "Could not write the bundle", output="/sys/likeness-corpus-out",
         subprocess=True),
    Case("disk_full", _face(), 2, "No space left on device", fault="write:enospc", subprocess=True),
    Case("texture_size_out_of_range", _face(), 2, "out of range", texture_size=16),
    Case("lens_out_of_range", _face(), 2, "lens is out of range", lens_mm=2.0),
    # jobs of several photos
    Case("same_photo_twice", _twice, 0, "is the same picture as photo 1"),
    Case("same_photo_copied", _copy, 0, "is the same picture as photo 1"),
    Case("mixed_people", _mixed, 0, "look like different people"),
    Case("same_person_two_photos", _same_person, 0, "Bundle written", absent="different people"),
    Case("too_many_photos", lambda d: _face()(d) * 65, 2, "at most 64"),
]


def write_all(root: Path) -> None:
    """Write every case's photos into ``root/<case>/``."""
    for case in CASES:
        try:
            case.build(root / case.name)
        except Unavailable as exc:
            print(f"skipped {case.name}: {exc}")


if __name__ == "__main__":
    write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "out/corpus"))
