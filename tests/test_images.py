"""load_photo: every bad input is a one-line FaceattrError, every colour mode becomes upright RGB."""

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from faceattr.data.images import load_photo
from faceattr.errors import FaceattrError


def gradient(h=40, w=60):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), np.full_like(xx, 90)], -1).astype(np.uint8)


def one_line_error(path, **kwargs) -> str:
    with pytest.raises(FaceattrError) as e:
        load_photo(path, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_text_file_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture\n")
    assert "not an image" in one_line_error(p)


def test_truncated_jpeg(tmp_path):
    p = tmp_path / "cut.jpg"
    Image.fromarray(gradient(200, 300)).save(p, quality=95)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    assert "truncated or corrupt" in one_line_error(p)


def test_decompression_bomb_header(tmp_path):
    """A 100000x100000 PNG header with no real pixel data: refused before any decoding."""
    p = tmp_path / "bomb.png"
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))
    assert "bomb" in one_line_error(p)


def test_pixel_limit_is_ours(tmp_path):
    p = tmp_path / "ok.png"
    Image.fromarray(gradient(40, 60)).save(p)
    assert "over the limit" in one_line_error(p, max_pixels=40 * 60 - 1)
    assert load_photo(p, max_pixels=40 * 60).shape == (40, 60, 3)


def test_missing_file_and_folder(tmp_path):
    assert "no such file" in one_line_error(tmp_path / "absent.jpg")
    assert "folder" in one_line_error(tmp_path)


def test_rgb_png_round_trips(tmp_path):
    p, img = tmp_path / "rgb.png", gradient()
    Image.fromarray(img).save(p)
    out = load_photo(p)
    assert out.dtype == np.uint8 and np.array_equal(out, img)


def test_grey_becomes_rgb(tmp_path):
    p, grey = tmp_path / "grey.png", gradient()[..., 0]
    Image.fromarray(grey).save(p)
    out = load_photo(p)
    assert out.shape == (*grey.shape, 3) and all(np.array_equal(out[..., c], grey) for c in range(3))


def test_rgba_is_flattened_onto_white(tmp_path):
    p, rgba = tmp_path / "rgba.png", np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :15, 3] = 255  # left half opaque red, right half transparent
    Image.fromarray(rgba).save(p)
    out = load_photo(p)
    assert out.shape == (20, 30, 3)
    assert (out[:, :15] == [200, 0, 0]).all() and (out[:, 15:] == 255).all()


def test_16bit_grey_is_scaled_not_clipped(tmp_path):
    p = tmp_path / "grey16.png"
    a = np.array([[0, 32768, 65535]] * 10, np.uint16)
    Image.fromarray(a).save(p)
    assert Image.open(p).mode.startswith("I")  # really stored and read as 16-bit
    assert load_photo(p)[0, :, 0].tolist() == [0, 128, 255]


def test_16bit_rgb(tmp_path):
    p = tmp_path / "rgb16.png"
    a = np.zeros((10, 12, 3), np.uint16)
    a[..., 2] = 65535  # cv2 writes BGR: this is full red
    a[..., 1] = 257 * 100
    cv2.imwrite(str(p), a)
    out = load_photo(p)
    assert out.shape == (10, 12, 3) and (out == [255, 100, 0]).all()


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(p, quality=100)  # pure red ink
    out = load_photo(p)
    assert out.shape == (24, 32, 3)
    assert out[..., 0].mean() > 230 and out[..., 1:].mean() < 25


def test_palette_with_transparency(tmp_path):
    p = tmp_path / "pal.png"
    img = Image.fromarray(gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    img.info["transparency"] = int(np.asarray(img)[0, 0])
    img.save(p, transparency=img.info["transparency"])
    out = load_photo(p)
    assert out.shape == (40, 60, 3) and (out[0, 0] == 255).all()
    assert np.abs(out[-1, -1].astype(int) - gradient()[-1, -1]).max() < 40  # palette colours kept


def test_exif_rotation_is_applied(tmp_path):
    """A landscape JPEG tagged 'rotate 90 CW' (orientation 6) loads as the portrait a viewer shows."""
    p, img = tmp_path / "rot.jpg", np.zeros((40, 60, 3), np.uint8)
    img[:10, :10] = 255  # white block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(img).save(p, exif=exif, quality=95)
    out = load_photo(p)
    assert out.shape == (60, 40, 3)
    assert out[:10, -10:].mean() > 200 and out[:10, :10].mean() < 50  # top-left went to the top-right


def test_bytes_decode_like_the_file_and_errors_carry_the_name(tmp_path):
    p = tmp_path / "g.png"
    Image.fromarray(gradient()).save(p)
    assert np.array_equal(load_photo("upload.png", data=p.read_bytes()), load_photo(p))
    cut = p.read_bytes()[:60]
    assert "truncated or corrupt" in one_line_error("upload.png", data=cut)
    assert "not an image" in one_line_error("notes.jpg", data=b"this is not a picture\n")
