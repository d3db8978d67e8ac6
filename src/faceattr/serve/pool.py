"""Edits on worker processes with a bounded queue and a time limit: the engine of `faceattr serve`.

Processes, not threads: align's face detector is one object per process and not thread-safe, and a
process that runs over its time limit can be killed (and replaced), which a thread cannot. Each
worker loads its own Editor once; a photo travels to it as the uploaded bytes and comes back
encoded, so the server process never holds decoded pixels.

A job is `queued`, then `editing`, then `done` or `failed`. While it is editing, the worker sends
each stage of Editor.edit as it starts (detect, S31, S32, S33) ahead of its reply, and the job keeps
the current one with its start time (`Job.stage`), which is where it stopped if it fails; the report
of a finished job gives the seconds each stage took.
"""

import io
import math
import multiprocessing
import os
import queue
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import NamedTuple

from faceattr.errors import FaceattrError

MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
DEFAULT_EDIT_SECONDS = 5.0  # Retry-After before any edit is measured (the shipped nets: ~3 s on 2 cores)


class QueueFull(Exception):
    """Every worker is busy and the queue is at its maximum length."""

    def __init__(self, retry_after: int):
        super().__init__(f"the edit queue is full: retry in {retry_after} s")
        self.retry_after = retry_after


class NoWorker(Exception):
    """No worker process is running (one could not be restarted): the server cannot edit."""


class Stage(NamedTuple):
    """The stage of Editor.edit a job is in: one object, so a reader never sees a name with the
    previous stage's start."""

    name: str  # "detect", "S31", "S32" or "S33"
    started: float  # time.monotonic() when the worker said it began


@dataclass
class Job:
    """One photo to edit. `status` is the HTTP status of a failure (422 bad photo, 504 time, 500)."""

    photo: bytes | None  # the upload; dropped once a worker has it
    name: str  # shown in messages: the upload's file name
    edits: dict
    strength: float
    output_format: str  # "JPEG" or "PNG"
    deadline: float  # time.monotonic() by which it must be done
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = "queued"
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    stage: Stage | None = None  # None until the worker has read the photo and begun detection
    finished: float | None = None
    status: int | None = None
    error: str | None = None
    image: bytes | None = None
    report: dict | None = None
    future: Future = field(default_factory=Future)  # resolved when done or failed

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.output_format]


def _edit(editor, photo: bytes, name: str, edits: dict, strength: float, output_format: str, max_pixels: int,
          on_stage):
    """In a worker: decode, edit (calling on_stage(name) as each stage starts), encode
    -> ("done", image, report) | ("refused", message) | ("error", message)."""
    from PIL import Image

    from faceattr.data.images import load_photo

    try:
        try:
            rgb = load_photo(name, max_pixels, data=photo)
        except FaceattrError as e:
            return "refused", str(e)
        (result,) = editor.edit([rgb], edits, strength=strength, on_stage=on_stage)
        if result.error:
            return "refused", f"{name}: {result.error}"
        out = io.BytesIO()
        Image.fromarray(result.image).save(out, output_format, **({"quality": 95} if output_format == "JPEG" else {}))
        return "done", out.getvalue(), result.report
    except FaceattrError as e:
        return "refused", f"{name}: {e}"
    except Exception:  # noqa: BLE001  a bug: the worker logs it and stays up for the next job
        traceback.print_exc()
        return "error", "the edit failed unexpectedly (the server log has the details)"


def _work(editor_args: dict, threads: int, max_pixels: int, conn):
    """A worker process: load the Editor, say ("ready", attribute names) or ("failed", why), then
    edit every job received until the server closes the pipe, sending ("stage", name) as each stage
    of an edit starts and then its reply."""
    import torch

    from faceattr.edit.pipeline import Editor

    torch.set_num_threads(threads)
    try:
        editor = Editor(**editor_args)
    except FaceattrError as e:
        conn.send(("failed", str(e)))
        return
    except Exception as e:  # noqa: BLE001  e.g. a damaged checkpoint: the server stops with this one line
        conn.send(("failed", f"cannot load the editor: {type(e).__name__}: {e}"))
        return
    conn.send(("ready", list(editor.attr_names)))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the server has gone
            return
        conn.send(_edit(editor, *job, max_pixels, on_stage=lambda name: conn.send(("stage", name))))


class _Worker:
    """One worker process and the pipe to it."""

    def __init__(self, editor_args: dict, threads: int, max_pixels: int):
        ctx = multiprocessing.get_context("spawn")  # fork is unsafe in a process with threads (the server's)
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_work, args=(editor_args, threads, max_pixels, child),
                                   name="faceattr-edit", daemon=True)
        self.process.start()
        child.close()

    def ready(self, timeout: float) -> list[str]:
        """Wait for the Editor to load -> its attribute names; FaceattrError if it could not."""
        try:
            if not self.conn.poll(timeout):
                raise FaceattrError(f"the editor did not load within {timeout:g} s")
            kind, value = self.conn.recv()
        except (EOFError, OSError):
            raise FaceattrError("the edit worker died while loading the editor (the log above says why)") from None
        if kind == "failed":
            raise FaceattrError(value)
        return value

    def edit(self, job: Job, photo: bytes):
        """-> the worker's reply, or None when the job's deadline passes first; EOFError if it died.
        Each stage the worker starts on the way is recorded as the job's stage."""
        self.conn.send((photo, job.name, job.edits, job.strength, job.output_format))
        while self.conn.poll(max(0.0, job.deadline - time.monotonic())):  # the time left for the whole edit
            reply = self.conn.recv()
            if reply[0] != "stage":
                return reply
            job.stage = Stage(reply[1], time.monotonic())
        return None

    def stop(self):
        self.process.kill()
        self.process.join()
        self.conn.close()


class EditPool:
    """`workers` processes (default: half the CPUs, as torch already uses several threads per edit)
    each with `threads` torch threads; up to `queue_size` more jobs wait. A job has `time_limit`
    seconds from submission, waiting included; a worker still editing at the deadline is killed and
    replaced. Finished jobs are kept for `/v1/jobs` until `keep` newer ones have finished.

    editor_args: Editor's arguments (gnet, enet, encoder, options); modules must be picklable.
    """

    def __init__(self, editor_args: dict | None = None, workers: int | None = None, queue_size: int = 8,
                 time_limit: float = 60.0, max_pixels: int = 25_000_000, keep: int = 32,
                 threads: int | None = None, load_timeout: float = 300.0):
        cpus = os.cpu_count() or 1
        self.workers = workers or max(1, cpus // 2)
        if self.workers < 1 or queue_size < 0 or time_limit <= 0 or max_pixels < 1 or keep < 1:
            raise FaceattrError("the pool needs workers >= 1, queue >= 0, a time limit > 0, max pixels >= 1, keep >= 1")
        self.queue_size, self.time_limit, self.max_pixels, self.keep = queue_size, time_limit, max_pixels, keep
        self._spawn_args = (dict(editor_args or {}), threads or max(1, cpus // self.workers), max_pixels)
        self._load_timeout = load_timeout
        self._lock = threading.Lock()
        self._queue = queue.SimpleQueue()
        self._jobs: dict[str, Job] = {}  # active jobs and the last `keep` finished ones
        self._finished = deque()  # ids of kept finished jobs, oldest first
        self._active = 0  # queued + editing
        self._durations = deque(maxlen=20)  # seconds of the last edits
        self._closed = False
        slots = [_Worker(*self._spawn_args) for _ in range(self.workers)]  # load in parallel
        try:
            self.attr_names = [w.ready(load_timeout) for w in slots][0]
        except FaceattrError:
            for w in slots:
                w.stop()
            raise
        self._alive = len(slots)
        self._workers = slots  # the worker each runner feeds, by slot
        self._runners = [threading.Thread(target=self._run, args=(i,), name="faceattr-runner", daemon=True)
                         for i in range(len(slots))]
        for t in self._runners:
            t.start()

    # ---- the HTTP side ----

    def submit(self, photo: bytes, name: str, edits: dict, strength: float, output_format: str) -> Job:
        """Queue a job; QueueFull when at capacity, NoWorker when no worker runs."""
        with self._lock:
            if self._closed or not self._alive:
                raise NoWorker("no edit worker is running (the server is stopping, or see its log)")
            if self._active >= self._alive + self.queue_size:
                raise QueueFull(self._retry_after())
            job = Job(photo, name, edits, strength, output_format, deadline=time.monotonic() + self.time_limit)
            self._jobs[job.id] = job
            self._active += 1
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        """The job (None if unknown or no longer kept), failed with 504 if it waited past its deadline."""
        job = self._jobs.get(job_id)
        if job is not None:
            self.expire(job)
        return job

    def expire(self, job: Job):
        """Fail a job still queued at its deadline. One being edited is its runner's to stop."""
        with self._lock:
            expired = self._expire(job)
        if expired:
            job.future.set_result(job)

    def forget(self, job: Job):
        """Drop a finished job now (the synchronous endpoint has delivered it)."""
        with self._lock:
            if self._jobs.pop(job.id, None) is not None and job.id in self._finished:
                self._finished.remove(job.id)

    def position(self, job: Job) -> int:
        """1 for the next queued job to start, 2 for the one after it, ..."""
        with self._lock:
            return 1 + sum(j.state == "queued" and j.created < job.created for j in self._jobs.values())

    def typical_seconds(self) -> float | None:
        """Mean duration of the recent edits (None before the first)."""
        with self._lock:
            return self._mean_duration()

    def stats(self) -> dict:
        with self._lock:
            states = [j.state for j in self._jobs.values()]
        return {"workers": 0 if self._closed else self._alive, "queued": states.count("queued"),
                "editing": states.count("editing"), "queue_size": self.queue_size, "time_limit_s": self.time_limit}

    def close(self):
        """Kill the workers and stop the runners (jobs in progress fail)."""
        with self._lock:
            self._closed = True
        for _ in self._runners:
            self._queue.put(None)
        for w in self._workers:
            if w is not None:
                w.process.kill()  # its runner sees the pipe close, ends the job and stops
        for t in self._runners:
            t.join()

    # ---- the workers' side ----

    def _mean_duration(self) -> float | None:
        return sum(self._durations) / len(self._durations) if self._durations else None

    def _retry_after(self) -> int:
        typical = self._mean_duration() or DEFAULT_EDIT_SECONDS
        return max(1, math.ceil(typical / max(1, self._alive)))  # about when the next worker frees

    def _expire(self, job: Job) -> bool:
        """Under the lock: fail a job that is still queued at its deadline; whether it was."""
        if job.state != "queued" or time.monotonic() < job.deadline:
            return False
        job.photo = None
        self._end(job, "failed", 504, f"waited in the queue past the time limit of {self.time_limit:g} s")
        return True

    def _end(self, job: Job, state: str, status: int | None = None, error: str | None = None):
        """Under the lock: mark a job finished and keep it among the last `keep`."""
        job.state, job.status, job.error, job.finished = state, status, error, time.monotonic()
        self._active -= 1
        self._finished.append(job.id)
        while len(self._finished) > self.keep:
            self._jobs.pop(self._finished.popleft(), None)

    def _run(self, slot: int):
        """A runner thread: feeds one worker process jobs from the queue, one at a time."""
        worker = self._workers[slot]
        while True:
            job = self._queue.get()
            if job is None:
                break
            with self._lock:
                expired = self._expire(job)
                if job.state != "queued":  # expired, now or earlier
                    if expired:
                        job.future.set_result(job)
                    continue
                job.state, job.started = "editing", time.monotonic()
                photo, job.photo = job.photo, None
            try:
                reply = worker.edit(job, photo)
            except (EOFError, OSError):
                reply = "error", "the edit worker died (the server log may say why)"
                worker.stop()
                worker = None
            if reply is None:
                reply = "timeout", f"the edit ran past the time limit of {self.time_limit:g} s and was stopped"
                worker.stop()
                worker = None
            with self._lock:
                if reply[0] == "done":
                    job.image, job.report = reply[1], reply[2]
                    self._durations.append(time.monotonic() - job.started)
                    self._end(job, "done")
                else:
                    self._end(job, "failed", {"refused": 422, "timeout": 504, "error": 500}[reply[0]], reply[1])
            job.future.set_result(job)
            if worker is None:
                worker = self._workers[slot] = self._restart()
                if worker is None:
                    return
        worker.stop()

    def _restart(self) -> _Worker | None:
        """A fresh worker for a killed one (None if the pool is closing or it would not load)."""
        with self._lock:
            if self._closed:
                self._alive -= 1
                return None
        worker = _Worker(*self._spawn_args)
        try:
            worker.ready(self._load_timeout)
            return worker
        except FaceattrError as e:
            worker.stop()
            print(f"faceattr serve: could not restart an edit worker: {e}", file=sys.stderr)
            with self._lock:
                self._alive -= 1
            return None
