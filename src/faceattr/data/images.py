"""The one image decoder: a user's photo for editing (the patent's O of S31, before detection and
alignment, `load_photo`) and a corpus image for training (`load_rgb`: also squared and resized).

For a photo, anything a user may point at gives either an RGB uint8 (H, W, 3) array or a one-line FaceattrError:
not an image, a truncated or corrupt file, a decompression bomb (more than `MAX_PIXELS`), a
missing or unreadable file. Every colour mode becomes RGB (grey, 16-bit, float, palette, CMYK,
alpha flattened onto white) and the EXIF orientation is applied, so the pixels are upright as
a photo viewer shows them.
"""

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from faceattr.errors import FaceattrError

MAX_PIXELS = 64_000_000  # 64 MP: above any camera photo (a 61 MP full-frame is 9504x6336)


def _high_depth_to_8bit(img: Image.Image) -> Image.Image:
    """16-bit ('I;16*', 'I') or float ('F') grey -> 'L', scaled by the mode's range, not clipped."""
    a = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        scale = 255.0 if a.size and np.nanmax(a) <= 1.0 else 1.0  # float images are usually [0, 1]
    else:
        scale = 255.0 / 65535.0
    return Image.fromarray(np.clip(np.nan_to_num(a) * scale + 0.5, 0, 255).astype(np.uint8))


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 'RGB': high bit depth scaled to 8 bits, transparency flattened onto white."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = _high_depth_to_8bit(img)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img.convert("RGB")


def load_photo(path, max_pixels: int = MAX_PIXELS, data: bytes | None = None) -> np.ndarray:
    """Decode the photo at `path` (or, given `data`, those bytes, named `path` in messages) -> upright
    RGB uint8 (H, W, 3); FaceattrError on any bad input."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path if data is None else io.BytesIO(data)) as img:  # reads the header only
                if img.width * img.height > max_pixels:
                    raise FaceattrError(f"{path}: {img.width}x{img.height} pixels is over the limit of "
                                        f"{max_pixels / 1e6:g} megapixels (a decompression bomb?)")
                img.load()  # decodes: raises on truncated or corrupt data
                return np.asarray(to_rgb(ImageOps.exif_transpose(img)), dtype=np.uint8)
    except FaceattrError:
        raise
    except FileNotFoundError:
        raise FaceattrError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FaceattrError(f"{path}: is a folder, not an image") from None
    except PermissionError:
        raise FaceattrError(f"{path}: permission denied") from None
    except UnidentifiedImageError:
        raise FaceattrError(f"{path}: not an image (or a format Pillow cannot read)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise FaceattrError(f"{path}: too many pixels for a photo (a decompression bomb?)") from None
    except MemoryError:
        raise FaceattrError(f"{path}: too large to decode in memory") from None
    except Exception as e:  # noqa: BLE001  Pillow's decoders raise OSError, SyntaxError, ValueError, ...
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FaceattrError(f"{path}: truncated or corrupt image ({detail})") from None


def _square_box(w, h):
    """Centred square crop box; (0, 20, 178, 198) for CelebA's 178x218."""
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return left, top, left + s, top + s


def load_rgb(path, resolution) -> np.ndarray:
    """Decode a corpus image file to uint8 (resolution, resolution, 3): EXIF orientation, any mode -> RGB
    (`to_rgb`), a centred square crop of any other shape (`data.dataset`), Pillow LANCZOS resize."""
    with Image.open(path) as img:
        img = to_rgb(ImageOps.exif_transpose(img))
        if img.width != img.height:
            img = img.crop(_square_box(img.width, img.height))
        if img.size != (resolution, resolution):
            img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
        return np.asarray(img, dtype=np.uint8)


def demo_photo() -> Path:
    """The bundled demo photo: NASA's portrait of astronaut Eileen Collins (public domain), 512x512 JPEG
    from scikit-image's `skimage.data.astronaut()` (see assets/README.md)."""
    from importlib import resources

    return Path(str(resources.files("faceattr") / "assets" / "astronaut.jpg"))
