"""What every judge needs: model files inside installed packages, input checks, small faces upscaled."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

from faceattr.errors import FaceattrError


def package_dir(package: str, install: str) -> Path:
    """Folder of an installed package, found without importing it (some of our weight packages
    import heavy or broken dependencies in their __init__). A plain module of the same name earlier
    on sys.path does not hide it: damefaces installs a damefaces.py script into the venv's bin/,
    which is sys.path[0] when `faceattr` runs."""
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if spec is not None:  # a plain module of that name comes first: look past it
        for entry in sys.path:
            if (Path(entry or ".") / package / "__init__.py").is_file():
                return Path(entry or ".") / package
    raise FaceattrError(f"package {package!r} is not installed: run `{install}`")


def model_file(package: str, install: str, pattern: str) -> Path:
    folder = package_dir(package, install)
    found = sorted(folder.glob(pattern))
    if not found:
        raise FaceattrError(f"no {pattern} in {folder}: reinstall with `{install}`")
    return found[-1]


JUDGE_SIZE = 128  # small samples are upscaled to this before detection and embedding


def upscale(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.shape[0] >= JUDGE_SIZE:
        return image
    return cv2.resize(image, (JUDGE_SIZE, JUDGE_SIZE), interpolation=cv2.INTER_CUBIC)


def as_rgb(image) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or min(a.shape[:2]) < 8:
        raise FaceattrError(f"expected an RGB uint8 (H, W, 3) image of at least 8x8 pixels, got "
                            f"{a.dtype} {a.shape}")
    return np.ascontiguousarray(a)
