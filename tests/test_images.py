import numpy as np
import pytest
from PIL import Image

from likeness.errors import BadInput
from likeness.capture.images import DEFAULT_FOCAL_FACTOR, MAX_SIDE, load_photo


def test_focal_length_comes_from_exif_when_present(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 72  # FocalLengthIn35mmFilm: 72 mm
    path = tmp_path / "portrait.jpg"
    Image.fromarray(np.zeros((400, 300, 3), np.uint8)).save(path, exif=exif)
    photo = load_photo(path)
    assert photo.focal_source == "exif"
    assert photo.focal_px == pytest.approx(72 / 36 * 400)


def test_default_focal_length_without_exif(tmp_path):
    path = tmp_path / "plain.png"
    Image.fromarray(np.zeros((200, 500, 3), np.uint8)).save(path)
    photo = load_photo(path)
    assert photo.focal_source == "default" and photo.focal_px == pytest.approx(DEFAULT_FOCAL_FACTOR * 500)
    assert photo.size == (500, 200) and photo.principal_point == (250.0, 100.0)


def test_the_jobs_lens_is_used_without_exif_and_exif_wins_over_it(tmp_path):
    plain = tmp_path / "plain.png"
    Image.fromarray(np.zeros((200, 500, 3), np.uint8)).save(plain)
    photo = load_photo(plain, lens_mm=85.0)
    assert photo.focal_source == "lens" and photo.focal_px == pytest.approx(85 / 36 * 500)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 28  # the file says 28 mm: it knows better than the job
    tagged = tmp_path / "tagged.jpg"
    Image.fromarray(np.zeros((400, 300, 3), np.uint8)).save(tagged, exif=exif)
    photo = load_photo(tagged, lens_mm=85.0)
    assert photo.focal_source == "exif" and photo.focal_px == pytest.approx(28 / 36 * 400)


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((100, 200, 3), np.uint8)
    pixels[:, :20] = 255  # a white band on the left of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90° clockwise turn
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    photo = load_photo(path)
    assert photo.size == (100, 200)  # upright: portrait
    assert photo.rgb[:20].mean() > 200 and photo.rgb[-20:].mean() < 50  # the band is now at the top


def test_greyscale_and_alpha_become_rgb_and_huge_photos_shrink(tmp_path):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((50, 60), 128, np.uint8)).save(grey)
    assert load_photo(grey).rgb.shape == (50, 60, 3)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.zeros((40, 40, 4), np.uint8)).save(rgba)
    assert load_photo(rgba).rgb.shape == (40, 40, 3)
    huge = tmp_path / "huge.png"
    Image.new("RGB", (MAX_SIDE * 2, 100)).save(huge)
    assert load_photo(huge).size == (MAX_SIDE, 50)


def test_truncated_file_is_bad_input(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(BadInput, match="cut.jpg"):
        load_photo(path)
