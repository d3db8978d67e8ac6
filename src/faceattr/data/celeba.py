"""CelebA's own label files, read and written exactly in CelebA's format (labels for patent S21).

- list_attr_celeba.txt: line 1 the image count, line 2 the attribute names (space-separated), then
  one line per image: `filename v1 v2 ...` with 1 (has it) or -1 (has not), whitespace-separated.
- list_eval_partition.txt: `filename 0|1|2` per line (0 train, 1 val, 2 test).

`default_split` is the fixed split rule for a corpus that ships none: a hash of the file name, so a
file keeps its split forever, whatever files are added or removed.
"""

import hashlib
from pathlib import Path

import numpy as np

from faceattr.errors import FaceattrError
from faceattr.fileio import write_text

SPLIT_NAMES = ("train", "val", "test")
TRAIN_PERCENT, VAL_PERCENT = 80, 10  # test gets the remaining 10


def default_split(filename) -> int:
    """0/1/2 (train/val/test) from blake2b of the base file name: 80/10/10, stable forever."""
    name = Path(str(filename)).name
    bucket = int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big") % 100
    return 0 if bucket < TRAIN_PERCENT else 1 if bucket < TRAIN_PERCENT + VAL_PERCENT else 2


def _lines(path):
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FaceattrError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise FaceattrError(f"cannot read {path}: {e}") from e
    return path, text.splitlines()


def read_attrs(path) -> tuple[list[str], list[str], np.ndarray]:
    """-> (attribute names, file names, int8 array (n_files, n_attrs) of 1/-1)."""
    path, lines = _lines(path)
    if len(lines) < 2:
        raise FaceattrError(f"{path}: needs a count line and an attribute-name line")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise FaceattrError(f"{path}: line 1: expected the image count, got {lines[0][:60]!r}") from None
    names = lines[1].split()
    if not names:
        raise FaceattrError(f"{path}: line 2: no attribute names")
    if len(set(names)) != len(names):
        raise FaceattrError(f"{path}: line 2: duplicate attribute names")
    files, rows, seen = [], [], set()
    for n, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise FaceattrError(f"{path}: line {n}: expected a file name and {len(names)} values, "
                                f"got {len(parts)} fields")
        try:
            vals = [int(v) for v in parts[1:]]
        except ValueError:
            raise FaceattrError(f"{path}: line {n}: values must be 1 or -1") from None
        if any(v not in (1, -1) for v in vals):
            raise FaceattrError(f"{path}: line {n}: values must be 1 or -1")
        if parts[0] in seen:
            raise FaceattrError(f"{path}: line {n}: {parts[0]} is listed twice")
        seen.add(parts[0])
        files.append(parts[0])
        rows.append(vals)
    if len(files) != count:
        raise FaceattrError(f"{path}: line 1 says {count} images but {len(files)} are listed")
    values = np.array(rows, dtype=np.int8).reshape(len(files), len(names))
    return names, files, values


def write_attrs(path, names, filenames, values):
    """Write list_attr_celeba.txt atomically (values: 1/-1, shape (len(filenames), len(names)))."""
    names, filenames = [str(n) for n in names], [str(f) for f in filenames]
    values = np.asarray(values)
    if values.shape != (len(filenames), len(names)):
        raise ValueError(f"values have shape {values.shape}, expected {(len(filenames), len(names))}")
    if not np.isin(values, (1, -1)).all():
        raise ValueError("attribute values must be 1 or -1")
    for token in names + filenames:
        if not token or any(c.isspace() for c in token):
            raise ValueError(f"names and file names must be non-empty without spaces: {token!r}")
    if len(set(filenames)) != len(filenames):
        raise ValueError("duplicate file names")
    out = [str(len(filenames)), " ".join(names)]
    out += [f + " " + " ".join(f"{int(v):2d}" for v in row) for f, row in zip(filenames, values)]
    write_text(path, "\n".join(out) + "\n")


def read_partition(path) -> dict[str, int]:
    """-> {file name: 0|1|2}."""
    path, lines = _lines(path)
    splits = {}
    for n, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise FaceattrError(f"{path}: line {n}: expected 'filename 0|1|2', got {line[:80]!r}")
        if parts[0] in splits:
            raise FaceattrError(f"{path}: line {n}: {parts[0]} is listed twice")
        splits[parts[0]] = int(parts[1])
    return splits


def write_partition(path, filenames, splits):
    """Write list_eval_partition.txt atomically (splits: 0/1/2 per file)."""
    filenames, splits = [str(f) for f in filenames], [int(s) for s in splits]
    if len(filenames) != len(splits):
        raise ValueError(f"{len(filenames)} file names but {len(splits)} splits")
    if any(s not in (0, 1, 2) for s in splits):
        raise ValueError("splits must be 0, 1 or 2")
    for f in filenames:
        if not f or any(c.isspace() for c in f):
            raise ValueError(f"file names must be non-empty without spaces: {f!r}")
    write_text(path, "".join(f"{f} {s}\n" for f, s in zip(filenames, splits)))
