"""Decoding every supported format, orientation, odd modes, and every kind of bad file."""

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from clipsearch.errors import UnreadableImage
from clipsearch.media.images import (
    PreprocessParams,
    content_hash,
    is_image_name,
    load_for_model,
    max_decoded_pixels,
    open_image,
    prepare,
)
from tests.helpers import big_jpeg, make_image, png_bomb


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".gif", ".bmp", ".tiff", ".heic"])
def test_every_format_decodes(tmp_path, suffix):
    path = make_image(tmp_path / f"x{suffix}", seed=3, size=(80, 48))
    img, info = open_image(path)
    assert img.mode == "RGB" and img.size == (80, 48)
    assert (info.width, info.height) == (80, 48)


def test_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    img, _ = open_image(tmp_path / "a.gif")
    r, _, b = img.getpixel((10, 10))
    assert r > 200 and b < 50


def test_exif_orientation_is_applied(tmp_path):
    # A 60x20 picture stored sideways with orientation 6 (rotate 90° clockwise to view).
    arr = np.zeros((20, 60, 3), np.uint8)
    arr[:, :10] = (255, 0, 0)  # red on the stored left edge -> top after rotation
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    out, info = open_image(tmp_path / "o.jpg")
    assert out.size == (20, 60) and (info.width, info.height) == (20, 60)
    r, g, _ = out.getpixel((10, 3))
    assert r > 200 and g < 60


def test_exif_capture_time_is_read(tmp_path):
    img = Image.new("RGB", (16, 16))
    exif = img.getexif()
    exif.get_ifd(0x8769)[36867] = "2021:07:04 12:30:00"
    img.save(tmp_path / "t.jpg", exif=exif.tobytes())
    _, info = open_image(tmp_path / "t.jpg")
    assert info.taken_at == "2021-07-04T12:30:00"


def test_transparency_becomes_white(tmp_path):
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(tmp_path / "t.png")
    img, _ = open_image(tmp_path / "t.png")
    assert img.getpixel((5, 5)) == (255, 255, 255)


def test_sixteen_bit_png(tmp_path):
    arr = np.full((8, 8), 65535, np.uint16)
    Image.fromarray(arr).save(tmp_path / "d.png")
    img, _ = open_image(tmp_path / "d.png")
    assert img.getpixel((1, 1)) == (255, 255, 255)


def _jpeg_bytes(size=(400, 300)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file (0 bytes)"),
        (b"hello, I am a text file", "not an image"),
        (_jpeg_bytes()[:300], "truncated or corrupt"),
    ],
)
def test_bad_bytes_give_reasons(tmp_path, data, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(data)
    with pytest.raises(UnreadableImage) as err:
        open_image(path)
    assert reason in err.value.reason and err.value.path == str(path)


def test_missing_file(tmp_path):
    with pytest.raises(UnreadableImage, match="file not found"):
        open_image(tmp_path / "nope.jpg")


def test_jpeg_draft_mode_decodes_smaller_but_not_below_target():
    big = _jpeg_bytes((2000, 1500))
    img, info = open_image(big, draft_size=224)
    assert (info.width, info.height) == (2000, 1500)  # the real size is recorded
    assert min(img.size) >= 224 and img.size[0] <= 500  # decoded at 1/4 or 1/8 scale


@pytest.mark.parametrize("size", [(12000, 9000), (16320, 12240)], ids=["108MP", "200MP"])
def test_phone_photos_are_judged_by_the_size_actually_decoded(tmp_path, size):
    path = big_jpeg(tmp_path / "phone.jpg", size)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img, info = open_image(path, draft_size=224)
        pixels, _ = load_for_model(path, PreprocessParams(size=(224, 224)))
    assert not caught, [str(w.message) for w in caught]
    assert (info.width, info.height) == size  # the real size is recorded
    assert img.size == ((size[0] + 7) // 8, (size[1] + 7) // 8)  # decoded at 1/8 scale
    assert pixels.shape == (224, 224, 3)
    # Decoded in full, the same file is over the limit: refused with the sizes, quietly.
    with warnings.catch_warnings(record=True) as caught, pytest.raises(UnreadableImage) as err:
        warnings.simplefilter("always")
        open_image(path)
    assert not caught
    megapixels = f"{size[0] * size[1] / 1e6:.1f}".removesuffix(".0")
    assert err.value.reason == (
        f"image too large to decode safely ({size[0]}x{size[1]}, {megapixels} MP; limit 89.5 MP)"
    )


@pytest.mark.parametrize("side", [10000, 20000], ids=["100MP", "400MP"])
def test_true_bombs_are_refused_with_the_reason_and_no_warning(tmp_path, side):
    path = png_bomb(tmp_path / "bomb.png", side, side)
    assert path.stat().st_size < 2**20  # a small file...
    with warnings.catch_warnings(record=True) as caught, pytest.raises(UnreadableImage) as err:
        warnings.simplefilter("always")
        open_image(path, draft_size=224)  # ...that no draft mode can shrink
    assert not caught, [str(w.message) for w in caught]
    megapixels = side * side // 1_000_000
    assert err.value.reason == (
        f"image too large to decode safely ({side}x{side}, {megapixels} MP; limit 89.5 MP)"
    )


def test_the_limit_is_pillows_setting_applied_to_the_decoded_size(tmp_path, monkeypatch):
    assert max_decoded_pixels() == Image.MAX_IMAGE_PIXELS == 89_478_485  # 256 MiB as RGB
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    jpeg = _jpeg_bytes((4000, 3000))  # 12 MP in the header, 0.19 MP decoded at 1/8 scale
    assert open_image(jpeg, draft_size=224)[0].size == (500, 375)
    with pytest.raises(UnreadableImage, match=r"\(4000x3000, 12 MP; limit 1 MP\)"):
        open_image(jpeg)  # decoded in full
    png = make_image(tmp_path / "wide.png", size=(1001, 1000))
    with pytest.raises(UnreadableImage, match="1001x1000, 1 MP; limit 1 MP"):
        open_image(png, draft_size=224)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # switched off, as in Pillow
    assert max_decoded_pixels() is None and open_image(png)[0].size == (1001, 1000)


def test_phone_jpegs_with_extra_pictures_mpo_decode_at_reduced_scale_too():
    # Phones store depth maps and HDR gain maps as extra pictures: Pillow reads such a JPEG
    # as MPO. It is still a JPEG and decodes at a reduced scale like one.
    main, extra = Image.new("RGB", (4000, 3000), (200, 10, 10)), Image.new("RGB", (400, 300))
    buf = io.BytesIO()
    main.save(buf, "MPO", save_all=True, append_images=[extra])
    img, info = open_image(buf.getvalue(), draft_size=224)
    assert info.format == "MPO" and (info.width, info.height) == (4000, 3000)
    assert img.size == (500, 375)
    r, g, _ = img.getpixel((250, 180))
    assert r > 180 and g < 40  # the main picture, not the extra one


@pytest.mark.parametrize("mode", ["shortest", "squash"])
def test_prepare_matches_open_clip_preprocessing(tmp_path, mode):
    import open_clip
    import torch
    from open_clip.transform import PreprocessCfg, image_transform_v2

    path = make_image(tmp_path / "p.png", seed=5, size=(300, 170))
    img, _ = open_image(path)
    params = PreprocessParams(size=(224, 224), resize_mode=mode)
    ours = prepare(img, params).astype(np.float32) / 255.0
    cfg = PreprocessCfg(size=224, resize_mode=mode)
    theirs = image_transform_v2(cfg, is_train=False)(Image.open(path))
    mean = torch.tensor(cfg.mean).view(3, 1, 1)
    std = torch.tensor(cfg.std).view(3, 1, 1)
    theirs = (theirs * std + mean).permute(1, 2, 0).numpy()
    assert ours.shape == theirs.shape == (224, 224, 3)
    assert np.abs(ours - theirs).max() < 1.5 / 255
    assert open_clip is not None


def test_load_for_model_shapes():
    pixels, info = load_for_model(_jpeg_bytes((640, 480)), PreprocessParams(size=(64, 64)))
    assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
    assert info.format == "JPEG"


def test_names_and_hash():
    assert is_image_name("a.JPG") and is_image_name("b.heic") and not is_image_name("c.txt")
    assert not is_image_name(".jpg")
    assert content_hash(b"abc") == content_hash(b"abc") != content_hash(b"abd")
