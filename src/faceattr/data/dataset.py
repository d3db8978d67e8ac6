"""Training faces (patent S12 real faces, S21 labelled faces) from a CelebA or plain-folder corpus.

Layouts, detected from ROOT:
- CelebA: ROOT/img_align_celeba/*.jpg, optional ROOT/list_attr_celeba.txt and list_eval_partition.txt
  (no partition file: `default_split`; no attribute file: unlabelled, fine for the GAN).
- Plain folder: images anywhere under ROOT, optional ROOT/attributes.csv (or `csv=`) with header
  `filename,Attr1,...` (1/-1 or 1/0) and an optional `split` column (train/val/test or 0/1/2).

Images are decoded once into a uint8 .npy (N, H, W, 3) in the cache folder, rows sorted by split so a
split is a memory-mapped slice; epochs never decode JPEG. The cache name hashes the resolution, the
crop rule and every file's (name, size, mtime, split), so any change rebuilds it.

Crop: square images (our FFHQ-aligned corpus) are only resized; any other shape gets a centred square
crop, which for CelebA's 178x218 aligned faces is the box (0, 20, 178, 198) -- the same as
torchvision CenterCrop(178) used by StarGAN-style CelebA attribute editors: whole face plus hair, chin
kept. (Tighter 108/128/140 crops, e.g. DCGAN's or the 128 box centred on (89, 121) of PGGAN-style
tools, cut the hair and the jaw, which several attributes live in.)
Resize: Pillow LANCZOS. Pillow widens the kernel by the scale factor when downscaling, so it
antialiases like area averaging but stays sharper than BOX; it is what the StyleGAN dataset tools use.
"""

import csv as csvlib
import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from faceattr.data.celeba import default_split, read_attrs, read_partition
from faceattr.data.images import load_rgb
from faceattr.errors import FaceattrError
from faceattr.fileio import atomic_path, write_text
from faceattr.imaging import to_float  # noqa: F401  (re-exported: uint8 -> [-1, 1] float)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
SPLITS = {"train": 0, "val": 1, "test": 2}
CROP_RULE = "square:resize;other:center-square;lanczos"
CACHE_VERSION = 1


SPLIT_CODES = {"train": 0, "0": 0, "val": 1, "valid": 1, "validation": 1, "1": 1, "test": 2, "2": 2}


def _read_csv(path):
    """-> (attribute names, {filename: int8 row of 1/-1}, {filename: split code})."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csvlib.reader(f) if any(c.strip() for c in r)]
    header = [h.strip() for h in rows[0]] if rows else []
    if not header or header[0].lower() != "filename":
        raise FaceattrError(f"{path}: the header must start with 'filename' (filename,Attr1,Attr2,...[,split])")
    cols = [i for i, h in enumerate(header) if i and h.lower() != "split"]
    split_col = next((i for i, h in enumerate(header) if h.lower() == "split"), None)
    table, splits = {}, {}
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise FaceattrError(f"{path}: row {n} has {len(row)} fields, the header {len(header)}")
        try:
            vals = [float(row[i]) for i in cols]
        except ValueError:
            vals = [None]
        if any(v not in (1, 0, -1) for v in vals):
            raise FaceattrError(f"{path}: row {n}: attribute values must be 1/-1 or 1/0")
        name = row[0].strip()
        table[name] = np.array([1 if v == 1 else -1 for v in vals], np.int8)
        if split_col is not None and row[split_col].strip():  # blank: default_split
            code = SPLIT_CODES.get(row[split_col].strip().lower())
            if code is None:
                raise FaceattrError(f"{path}: row {n}: split {row[split_col]!r} is not train/val/test or 0/1/2")
            splits[name] = code
    return [header[i] for i in cols], table, splits


def _list_images(folder):
    """Relative posix names of the images under `folder`, skipping hidden files and folders."""
    names = []
    for dirpath, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(dirpath).relative_to(folder)
        names += [(rel / f).as_posix() for f in files
                  if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTS]
    return sorted(names)


def _listing(names, limit=10):
    return ", ".join(names[:limit]) + (f" ... (+{len(names) - limit})" if len(names) > limit else "")


def _scan(root, csv):
    """-> (image folder, sorted [(name, split)], attribute names or None, {name: 1/-1 row} or None, source)."""
    root = Path(root)
    if not root.is_dir():
        raise FaceattrError(f"dataset folder {root} does not exist")
    celeba = (root / "img_align_celeba").is_dir()
    folder = root / "img_align_celeba" if celeba else root
    names = _list_images(folder)
    if not names:
        raise FaceattrError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) found in {folder}")
    attr_names, table, splits, source = None, None, {}, None
    if csv is not None or not celeba:
        source = Path(csv) if csv is not None else root / "attributes.csv"
        if source.is_file():
            attr_names, table, splits = _read_csv(source)
        elif csv is not None:
            raise FaceattrError(f"attribute file {source} does not exist")
    elif (root / "list_attr_celeba.txt").is_file():
        source = root / "list_attr_celeba.txt"
        attr_names, files, values = read_attrs(source)
        table = dict(zip(files, values))
    if not splits and celeba and (root / "list_eval_partition.txt").is_file():
        splits = read_partition(root / "list_eval_partition.txt")

    # Files in the attribute/partition lists are matched by relative path, else by a unique basename
    # (Kaggle's CelebA nests img_align_celeba/img_align_celeba/).
    exact, by_base = set(names), {}
    for n in names:
        by_base.setdefault(Path(n).name, []).append(n)

    def resolve(key):
        if key in exact:
            return key
        hits = by_base.get(Path(key).name, [])
        return hits[0] if len(hits) == 1 else None

    splits = {resolve(k): s for k, s in splits.items()}
    if table is not None:
        keyed, missing = {}, []
        for k, v in table.items():
            n = resolve(k)
            if n is None:
                missing.append(k)
            else:
                keyed[n] = v
        if missing:
            warnings.warn(f"{len(missing)} file(s) listed in {source} are missing from {folder}: "
                          f"{_listing(missing)}", stacklevel=3)
        unlisted = [n for n in names if n not in keyed]
        if unlisted:
            warnings.warn(f"{len(unlisted)} image(s) have no row in {source} and are left out: "
                          f"{_listing(unlisted)}", stacklevel=3)
        names, table = [n for n in names if n in keyed], keyed
        if not names:
            raise FaceattrError(f"none of the images in {folder} is listed in {source}")
    items = [(n, splits[n] if n in splits else default_split(Path(n).name)) for n in names]
    return folder, sorted(items, key=lambda it: (it[1], it[0])), attr_names, table, source


def _cache_stem(folder, items, resolution):
    h = hashlib.sha256(json.dumps([CACHE_VERSION, resolution, CROP_RULE]).encode())
    for name, split in items:
        st = (folder / name).stat()
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0{split}\n".encode())
    return f"faces-{resolution}px-{h.hexdigest()[:20]}"


def _build_cache(folder, items, resolution, npy):
    """Decode every image into `npy` (atomically); -> (kept names, skipped names)."""
    kept, skipped = [], []
    with atomic_path(npy) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(items), resolution, resolution, 3))
        for name, _ in tqdm(items, desc=f"caching faces at {resolution}px", unit="img", dynamic_ncols=True):
            try:
                out[len(kept)] = load_rgb(folder / name, resolution)
                kept.append(name)
            except Exception as e:  # corrupt, truncated, unsupported: any decoder error skips the file
                warnings.warn(f"skipping unreadable image {folder / name}: {e}", stacklevel=3)
                skipped.append(name)
        if skipped:
            warnings.warn(f"skipped {len(skipped)} unreadable image(s) of {len(items)}", stacklevel=3)
            if not kept:
                raise FaceattrError(f"none of the {len(items)} images in {folder} could be read")
            with atomic_path(tmp) as tmp2:  # drop the unused tail rows: copy into a right-sized file
                small = np.lib.format.open_memmap(tmp2, mode="w+", dtype=np.uint8, shape=(len(kept), *out.shape[1:]))
                for a in range(0, len(kept), 4096):
                    b = min(a + 4096, len(kept))
                    small[a:b] = out[a:b]
                small.flush()
                del small
        out.flush()
        del out
    return kept, skipped


class FaceDataset(torch.utils.data.Dataset):
    """uint8 faces of one split from a memory-mapped cache; labels float32 in {0, 1} (None if unlabelled)."""

    def __init__(self, root, resolution=64, split="train", attrs=None, cache_dir=None, csv=None):
        if split not in (*SPLITS, "all"):
            raise FaceattrError(f"split must be train, val, test or all, not {split!r}")
        if int(resolution) < 1:
            raise FaceattrError(f"resolution must be a positive number of pixels, not {resolution}")
        resolution = int(resolution)
        folder, items, all_attrs, table, source = _scan(root, csv)
        if attrs is not None:
            if table is None:
                raise FaceattrError(f"attributes {list(attrs)} requested but {root} has no attribute file")
            for a in attrs:
                if a not in all_attrs:
                    raise FaceattrError(f"attribute {a!r} is not in {source}; available: {', '.join(all_attrs)}")
        self.attr_names = [] if table is None else list(attrs if attrs is not None else all_attrs)

        cache_dir = Path(cache_dir) if cache_dir is not None else Path(root) / ".faceattr-cache"
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FaceattrError(f"cannot create the image cache folder {cache_dir} ({e}); "
                                "choose another cache_dir") from None
        stem = _cache_stem(folder, items, resolution)
        npy, meta = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"
        try:  # reuse: the .json is written after the .npy, so its presence marks a complete cache
            info = json.loads(meta.read_text())
            kept, skipped = info["kept"], info["skipped"]
            if np.load(npy, mmap_mode="r").shape != (len(kept), resolution, resolution, 3):
                raise ValueError(f"{npy} does not match {meta}")
            if skipped:
                warnings.warn(f"{len(skipped)} unreadable image(s) are left out: {_listing(skipped)}", stacklevel=2)
        except (OSError, ValueError, KeyError):
            try:
                kept, skipped = _build_cache(folder, items, resolution, npy)
                write_text(meta, json.dumps({"version": CACHE_VERSION, "kept": kept, "skipped": skipped}))
            except OSError as e:  # decode errors are handled per file: this is the disk (full, read-only)
                raise FaceattrError(f"cannot write the image cache {npy} ({e}); free space or choose another "
                                    "cache_dir") from None
        self.skipped = len(skipped)

        split_of = dict(items)
        codes = np.array([split_of[n] for n in kept])  # sorted: the cache rows are ordered by split
        lo, hi = (0, len(kept)) if split == "all" else np.searchsorted(codes, [SPLITS[split], SPLITS[split] + 1])
        self._path, self._rows, self._mm = str(npy), (int(lo), int(hi)), None
        self.filenames = kept[lo:hi]
        if not self.filenames:
            warnings.warn(f"split {split!r} of {root} is empty", stacklevel=2)
        self.labels = None
        if table is not None:
            cols = [all_attrs.index(a) for a in self.attr_names]
            rows = np.array([table[n] for n in self.filenames], np.int8).reshape(len(self.filenames), -1)
            self.labels = (rows[:, cols] > 0).astype(np.float32)

    @property
    def images(self) -> np.ndarray:
        """uint8 (N, H, W, 3), a slice of the memory-mapped cache, opened lazily in each process."""
        if self._mm is None:
            lo, hi = self._rows
            self._mm = np.load(self._path, mmap_mode="r")[lo:hi]
        return self._mm

    def __getstate__(self):  # DataLoader workers: ship the path, not the mapped pages
        return {**self.__dict__, "_mm": None}

    def __len__(self):
        return len(self.filenames)

    def __getitem__(self, i):
        img = torch.from_numpy(np.array(self.images[i])).permute(2, 0, 1).contiguous()
        lab = torch.from_numpy(self.labels[i]) if self.labels is not None else torch.empty(0)
        return img, lab

    def batch(self, idx) -> torch.Tensor:
        """uint8 (B, 3, H, W) for an index array (one numpy fancy index on the memmap)."""
        return torch.from_numpy(self.images[np.asarray(idx)]).permute(0, 3, 1, 2).contiguous()
