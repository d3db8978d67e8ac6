"""Edits on worker processes with a bounded queue and a time limit: the engine of `faceattr serve`.

Processes, not threads: align's face detector is one object per process and not thread-safe, and a
process that runs over its time limit can be killed (and replaced), which a thread cannot. Each
worker loads its own Editor once; a photo travels to it as the uploaded bytes and comes back
encoded, so the server process never holds decoded pixels.

A job is `queued`, then `editing`, then `done` or `failed`. While it is editing, the worker sends
each stage of Editor.edit as it starts (detect, S31, S32, S33) ahead of its reply, and the job keeps
the current one with its start time (`Job.stage`), which is where it stopped if it fails; the report
of a finished job gives the seconds each stage took.

In time or not at all (issue 22.4): the workers x their torch threads never outnumber the cores by
default (a busy machine's oversubscribed threads made one S31 take 30 s instead of 3); a request
that the jobs ahead would push past the time limit is refused at once (429, Retry-After) from a
running estimate of the edit time, instead of waiting for a 504; a new worker warms up with one
edit before it takes jobs; an idle worker that dies is found within a second and replaced before a
job reaches it.
"""

import collections
import io
import math
import multiprocessing
import os
import pickle
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import NamedTuple

from faceattr.data.images import MAX_PIXELS
from faceattr.errors import FaceattrError
from faceattr.memory import release_freed_memory

MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
DEFAULT_EDIT_SECONDS = 5.0  # the edit time assumed when no warm-up measured one (the shipped nets: ~3-5 s per core)
EWMA_WEIGHT = 0.3  # weight of the newest edit's seconds in the running estimate, and of its deviation in the spread
SPREAD_MARGIN = 2.0  # admission plans each edit at estimate + this x spread (TCP's timeout adds 4x: RFC 6298)
HEALTH_SECONDS = 1.0  # an idle worker's process is checked this often
PING_SECONDS = 5.0  # and asked to answer this often (a hung one is replaced)
PING_TIMEOUT = 10.0
RENDER_SECONDS = 10.0  # a re-render (decode and paste only, ~0.3 s) that takes longer means a hung worker
SESSIONS_KEPT = 4  # finished edits each worker can still re-render (each holds its photo and tuned weights)
MAX_DEFAULT_WORKERS = 8  # each holds its own editor (hundreds of MB): more cores give each worker more threads
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_SPAWN_LOCK = threading.Lock()  # the environment is the spawned worker's: one start at a time changes it


def available_cpus() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup (v2) CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def layout(cpus: int, workers: int | None = None, threads: int | None = None) -> tuple[int, int]:
    """(workers, torch threads per worker) that do not oversubscribe `cpus` cores: workers x threads <=
    cpus unless the caller asks for more workers than cores (then one thread each). Defaults: one worker
    per core (at most MAX_DEFAULT_WORKERS), the cores shared out as threads; e.g. 2 cores: 2 x 1."""
    cpus = max(1, cpus)
    if workers is None:
        workers = max(1, min(MAX_DEFAULT_WORKERS, cpus // (threads or 1)))
    if threads is None:
        threads = max(1, cpus // workers)
    return workers, threads


class Busy(Exception):
    """The server cannot take the job now: answered 429 with Retry-After."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class QueueFull(Busy):
    """Every worker is busy and the queue is at its maximum length."""

    def __init__(self, retry_after: int):
        super().__init__(f"the edit queue is full: retry in {retry_after} s", retry_after)


class TooLate(Busy):
    """The jobs ahead would keep this one from finishing within the time limit."""

    def __init__(self, expected: float, time_limit: float, retry_after: int):
        super().__init__(f"the server is busy: this edit would finish in about {expected:.0f} s, past the time "
                         f"limit of {time_limit:g} s; retry in {retry_after} s", retry_after)


class NoWorker(Exception):
    """No worker process is running (one could not be restarted): the server cannot edit."""


class Gone(Exception):
    """The edit's latents are no longer kept (newer edits, or its worker was replaced): edit again."""


class RenderFailed(Exception):
    """The worker's re-render failed unexpectedly (a bug, logged by the worker, which stays up)."""


class _Lost(Exception):
    """The worker died before it took the job (while idle): the job goes to another worker."""


class Stage(NamedTuple):
    """The stage of Editor.edit a job is in: one object, so a reader never sees a name with the
    previous stage's start."""

    name: str  # "detect", "S31", "S32" or "S33"
    started: float  # time.monotonic() when the worker said it began


@dataclass(eq=False)  # a job is itself (found in the queue by identity)
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
    worker: "_Worker | None" = None  # the worker that edited it: the one that can re-render it

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.output_format]


def _encode(image, output_format: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, output_format, **({"quality": 95} if output_format == "JPEG" else {}))
    return out.getvalue()


@dataclass(eq=False)
class _RenderTask:
    """A finished job's edit to re-render at `strength` by the worker that holds its Session."""

    job_id: str
    strength: float
    future: Future = field(default_factory=Future)  # resolved with the worker's reply


def _edit(editor, photo: bytes, name: str, edits: dict, strength: float, output_format: str, max_pixels: int,
          on_stage, sessions=None, job_id=None):
    """In a worker: decode, edit (calling on_stage(name) as each stage starts), encode
    -> ("done", image, report) | ("refused", message) | ("error", message). With `sessions` (an
    OrderedDict) the edit's Session is kept there under `job_id` for re-renders, the last SESSIONS_KEPT."""
    from faceattr.data.images import load_photo

    try:
        try:
            rgb = load_photo(name, max_pixels, data=photo)
        except FaceattrError as e:
            return "refused", str(e)
        keep = sessions is not None and editor.stylegan
        (result,) = editor.edit([rgb], edits, strength=strength, on_stage=on_stage, keep=keep)
        if result.error:
            return "refused", f"{name}: {result.error}"
        if keep:
            sessions[job_id] = (result.session, output_format)
            while len(sessions) > SESSIONS_KEPT:
                sessions.popitem(last=False)
        return "done", _encode(result.image, output_format), result.report
    except FaceattrError as e:
        return "refused", f"{name}: {e}"
    except Exception:  # noqa: BLE001  a bug: the worker logs it and stays up for the next job
        traceback.print_exc()
        return "error", "the edit failed unexpectedly (the server log has the details)"


def _warm_up(editor, max_pixels: int) -> float | None:
    """In a new worker, before it takes jobs: one edit of the bundled demo photo (loads and runs every
    stage once) -> its seconds, or None if it failed (the worker still serves)."""
    from faceattr.data.images import demo_photo

    start = time.monotonic()
    reply = _edit(editor, demo_photo().read_bytes(), "warm-up", {editor.attr_names[0]: 1}, 1.0, "JPEG",
                  max_pixels, on_stage=lambda name: None)
    if reply[0] != "done":
        print(f"faceattr serve: the warm-up edit failed: {reply[1]}", file=sys.stderr, flush=True)
        return None
    return time.monotonic() - start


def _work(editor_args: bytes, threads: int, max_pixels: int, warmup: bool, conn):
    """A worker process: limit its threads (before torch loads), load the Editor, warm it up, say
    ("ready", facts) or ("failed", why), then answer ("pong",) to a ping and, for each job, ("got",)
    at once, ("stage", name) as each stage of the edit starts and then its reply, until the server
    closes the pipe. editor_args comes pickled, so that no torch module is unpickled before the
    thread limits are set."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    import pickle

    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already ran
        pass
    from faceattr.edit.pipeline import Editor

    try:
        editor = Editor(**pickle.loads(editor_args))
        seconds = _warm_up(editor, max_pixels) if warmup else None
    except FaceattrError as e:
        conn.send(("failed", str(e)))
        return
    except Exception as e:  # noqa: BLE001  e.g. a damaged checkpoint: the server stops with this one line
        conn.send(("failed", f"cannot load the editor: {type(e).__name__}: {e}"))
        return
    sessions = collections.OrderedDict()
    conn.send(("ready", {"attr_names": list(editor.attr_names), "rerender": editor.stylegan,
                         "warmup_seconds": seconds, "pid": os.getpid(), "threads": torch.get_num_threads(),
                         "interop_threads": torch.get_num_interop_threads(),
                         "env": {name: os.environ.get(name) for name in THREAD_VARIABLES}}))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the server has gone
            return
        if job[0] == "ping":
            conn.send(("pong",))
            continue
        if job[0] == "render":
            conn.send(_render(editor, sessions, *job[1:]))
            continue
        conn.send(("got",))
        conn.send(_edit(editor, *job[2:], max_pixels, on_stage=lambda name: conn.send(("stage", name)),
                        sessions=sessions, job_id=job[1]))
        release_freed_memory()  # idle, the worker holds only its weights and kept sessions (faceattr.memory)


def _render(editor, sessions, job_id: str, strength: float):
    """In a worker: a kept edit at another strength -> ("rendered", image) | ("gone", why) | ("refused", why)."""
    if job_id not in sessions:
        return "gone", "this edit's latents are no longer kept (newer edits replaced them): edit again"
    session, output_format = sessions[job_id]
    try:
        return "rendered", _encode(editor.render(session, strength), output_format)
    except FaceattrError as e:
        return "refused", str(e)
    except Exception:  # noqa: BLE001  a bug: logged, the worker stays up
        traceback.print_exc()
        return "error", "the re-render failed unexpectedly (the server log has the details)"


class _Worker:
    """One worker process and the pipe to it."""

    def __init__(self, editor_args: bytes, threads: int, max_pixels: int, warmup: bool):
        ctx = multiprocessing.get_context("spawn")  # fork is unsafe in a process with threads (the server's)
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_work, args=(editor_args, threads, max_pixels, warmup, child),
                                   name="faceattr-edit", daemon=True)
        self.facts: dict = {}
        with _SPAWN_LOCK:  # the child inherits the environment: limit its threads from its first import
            saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
            os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
            try:
                self.process.start()
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
        child.close()

    def ready(self, timeout: float) -> dict:
        """Wait for the Editor to load and warm up -> its facts (attr_names, warmup_seconds, pid,
        threads); FaceattrError if it could not."""
        try:
            if not self.conn.poll(timeout):
                raise FaceattrError(f"the editor did not load within {timeout:g} s")
            kind, value = self.conn.recv()
        except (EOFError, OSError):
            raise FaceattrError("the edit worker died while loading the editor (the log above says why)") from None
        if kind == "failed":
            raise FaceattrError(value)
        self.facts = value
        return value

    def alive(self) -> bool:
        return self.process.is_alive()

    def ping(self, timeout: float) -> bool:
        """Whether the idle worker answers within `timeout` seconds."""
        try:
            self.conn.send(("ping",))
            return self.conn.poll(timeout) and self.conn.recv() == ("pong",)
        except (EOFError, OSError):
            return False

    def edit(self, job: Job, photo: bytes):
        """-> the worker's reply, or None when the job's deadline passes first; _Lost if the worker was
        dead before it took the job, EOFError if it died editing. Each stage the worker starts on the
        way is recorded as the job's stage."""
        try:
            self.conn.send(("edit", job.id, photo, job.name, job.edits, job.strength, job.output_format))
            if not self.conn.poll(max(0.0, job.deadline - time.monotonic())):
                return None
            got = self.conn.recv()
        except (EOFError, OSError):
            raise _Lost from None
        assert got == ("got",), got
        while self.conn.poll(max(0.0, job.deadline - time.monotonic())):  # the time left for the whole edit
            reply = self.conn.recv()
            if reply[0] != "stage":
                return reply
            job.stage = Stage(reply[1], time.monotonic())
        return None

    def render(self, job_id: str, strength: float):
        """-> the worker's reply to a re-render; None if it did not answer within RENDER_SECONDS;
        EOFError / OSError if it died."""
        self.conn.send(("render", job_id, strength))
        return self.conn.recv() if self.conn.poll(RENDER_SECONDS) else None

    def stop(self):
        self.process.kill()
        self.process.join()
        self.conn.close()


_STOP = object()  # what a runner takes from the queue when the pool closes


class EditPool:
    """`workers` processes each with `threads` torch threads (by default from the cores, never more
    threads in all than cores: see `layout`); up to `queue_size` more jobs wait. A job has
    `time_limit` seconds from submission, waiting included; a worker still editing at the deadline is
    killed and replaced.

    Admission by expected wait: the pool keeps a running estimate of one edit's seconds (an EWMA over
    the finished edits; before any, the new workers' warm-up edit, or `estimate`) and of their spread,
    plans each edit at estimate + SPREAD_MARGIN x spread, and refuses at once (TooLate, a 429) a job that
    would finish past its time limit behind the jobs ahead of it, rather than let it wait for a 504. A job
    is always let in when a worker is idle, so that a stale estimate is measured again.

    Each worker warms up (one edit of the bundled photo) before it takes jobs. An idle worker is
    checked every HEALTH_SECONDS (and pinged every PING_SECONDS); a dead or hung one is replaced
    before a job reaches it, and a job handed to a worker that turns out dead goes to the next one.
    Finished jobs are kept for `/v1/jobs` until `keep` newer ones have finished.

    editor_args: Editor's arguments (gnet, enet, encoder, options); modules must be picklable.
    """

    def __init__(self, editor_args: dict | None = None, workers: int | None = None, queue_size: int = 8,
                 time_limit: float = 60.0, max_pixels: int = MAX_PIXELS, keep: int = 32,
                 threads: int | None = None, load_timeout: float = 300.0, warmup: bool = True,
                 estimate: float | None = None):
        cpus = available_cpus()
        if (workers is not None and workers < 1) or (threads is not None and threads < 1) or queue_size < 0 \
                or time_limit <= 0 or max_pixels < 1 or keep < 1 or (estimate is not None and estimate <= 0):
            raise FaceattrError("the pool needs workers >= 1, threads >= 1, queue >= 0, a time limit > 0, "
                                "max pixels >= 1, keep >= 1 and an estimate > 0")
        self.workers, self.threads = layout(cpus, workers, threads)
        if self.workers * self.threads > cpus:
            print(f"faceattr serve: {self.workers} worker(s) x {self.threads} thread(s) is more than the {cpus} "
                  "core(s): edits will slow each other down", file=sys.stderr)
        self.queue_size, self.time_limit, self.max_pixels, self.keep = queue_size, time_limit, max_pixels, keep
        self._spawn_args = (pickle.dumps(dict(editor_args or {})), self.threads, max_pixels, warmup)
        self._load_timeout = load_timeout
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: deque[Job] = deque()  # queued jobs, next first
        self._jobs: dict[str, Job] = {}  # active jobs and the last `keep` finished ones
        self._finished = deque()  # ids of kept finished jobs, oldest first
        self._active = 0  # queued + editing
        self._estimate = estimate  # seconds of one edit (EWMA); None until measured
        self._spread = 0.0  # EWMA of the edits' absolute deviation from the estimate
        self._closed = False
        slots = [_Worker(*self._spawn_args) for _ in range(self.workers)]  # load in parallel
        try:
            facts = [w.ready(load_timeout) for w in slots]
        except FaceattrError:
            for w in slots:
                w.stop()
            raise
        self.attr_names = facts[0]["attr_names"]
        self.rerender = facts[0]["rerender"]  # finished edits can be re-rendered at another strength (`render`)
        for f in facts:
            self._measured(f["warmup_seconds"])
        self._alive = len(slots)  # slots not given up (ready or being replaced)
        self._ready = [True] * len(slots)  # by slot: a loaded, warm worker
        self._workers = slots  # the worker each runner feeds, by slot
        self._renders = [deque() for _ in slots]  # by slot: re-renders waiting for that slot's worker
        self._runners = [threading.Thread(target=self._run, args=(i,), name="faceattr-runner", daemon=True)
                         for i in range(len(slots))]
        for t in self._runners:
            t.start()

    # ---- the HTTP side ----

    def submit(self, photo: bytes, name: str, edits: dict, strength: float, output_format: str) -> Job:
        """Queue a job; QueueFull when at capacity, TooLate when it would not finish in time, NoWorker
        when no worker runs."""
        with self._lock:
            if self._closed or not self._alive:
                raise NoWorker("no edit worker is running (the server is stopping, or see its log)")
            if self._active >= self._alive + self.queue_size:
                raise QueueFull(self._retry_after())
            wait, edit = self._expected_wait(), self._planned_seconds()
            if wait > 0 and wait + edit > self.time_limit:
                raise TooLate(wait + edit, self.time_limit, max(1, math.ceil(wait + edit - self.time_limit)))
            job = Job(photo, name, edits, strength, output_format, deadline=time.monotonic() + self.time_limit)
            self._jobs[job.id] = job
            self._active += 1
            self._pending.append(job)
            self._wake.notify()
        return job

    def render(self, job: Job, strength: float) -> bytes:
        """The finished `job`'s edit at another strength, decoded and pasted again by the worker that edited
        it (no new search; it waits while that worker edits another photo). Gone when the edit is no longer
        kept there; FaceattrError for a strength the editor refuses; NoWorker when the pool is closing;
        RenderFailed when the worker's render raised anything else."""
        with self._lock:
            if self._closed:
                raise NoWorker("the server is stopping")
            slot = next((i for i, w in enumerate(self._workers) if w is not None and w is job.worker), None)
            if slot is None or not self._ready[slot]:
                raise Gone("this edit's worker has been replaced since, and its latents with it: edit again")
            task = _RenderTask(job.id, float(strength))
            self._renders[slot].append(task)
            self._wake.notify_all()  # the runner of that slot, whichever notify() would wake
        reply = task.future.result()
        if reply[0] == "rendered":
            return reply[1]
        if reply[0] == "refused":
            raise FaceattrError(reply[1])
        if reply[0] == "gone":
            raise Gone(reply[1])
        raise RenderFailed(reply[1])

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
        """The running estimate of one edit's seconds (None before any edit or warm-up was measured)."""
        with self._lock:
            return self._estimate

    def pids(self) -> list[int | None]:
        """The process id of each slot's worker (None while it is being replaced)."""
        with self._lock:
            return [w.process.pid if w is not None and ready else None for w, ready in zip(self._workers, self._ready)]

    def stats(self) -> dict:
        with self._lock:
            states = [j.state for j in self._jobs.values()]
            ready = 0 if self._closed else sum(self._ready)
            estimate, spread, wait = self._estimate, self._spread, self._expected_wait()
        return {"workers": ready, "workers_starting": 0 if self._closed else self._alive - ready,
                "threads_per_worker": self.threads, "queued": states.count("queued"),
                "editing": states.count("editing"), "queue_size": self.queue_size, "time_limit_s": self.time_limit,
                "edit_seconds": None if estimate is None else round(estimate, 3), "edit_spread_s": round(spread, 3),
                "expected_wait_s": round(wait, 3)}

    def worker_facts(self) -> list[dict]:
        """What each ready worker said when it started: pid, threads, interop_threads, env, warmup_seconds."""
        with self._lock:
            return [dict(w.facts) for w, ready in zip(self._workers, self._ready) if w is not None and ready]

    def close(self):
        """Kill the workers and stop the runners (jobs in progress fail, queued ones get 503)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            dropped = list(self._pending)
            self._pending.clear()
            for job in dropped:
                job.photo = None
                self._end(job, "failed", 503, "the server is stopping")
            self._wake.notify_all()
            workers = list(self._workers)
        for job in dropped:
            job.future.set_result(job)
        for w in workers:
            if w is not None:
                w.process.kill()  # its runner sees the pipe close, ends the job and stops
        for t in self._runners:
            t.join()

    # ---- the workers' side ----

    def _edit_seconds(self) -> float:
        return self._estimate or DEFAULT_EDIT_SECONDS

    def _planned_seconds(self) -> float:
        """What admission plans for one edit: the estimate plus a margin for how much edits have varied (on a
        point estimate, jobs let in near the limit timed out in the queue under load: docs/EXPERIMENTS.md)."""
        return self._edit_seconds() + SPREAD_MARGIN * self._spread

    def _measured(self, seconds: float | None):
        """Under the lock (or before the runners start): fold one edit's seconds into the estimate and spread."""
        if seconds is not None:
            if self._estimate is not None:
                self._spread = EWMA_WEIGHT * abs(seconds - self._estimate) + (1 - EWMA_WEIGHT) * self._spread
            self._estimate = seconds if self._estimate is None else \
                EWMA_WEIGHT * seconds + (1 - EWMA_WEIGHT) * self._estimate

    def _expected_wait(self) -> float:
        """Under the lock: seconds before a job submitted now would start: 0 with an idle worker, else the
        work left ahead of it (the rest of the edits running, the queued ones) shared by the workers."""
        ready = sum(self._ready)
        edit, now = self._planned_seconds(), time.monotonic()
        editing = [j for j in self._jobs.values() if j.state == "editing"]
        if not self._pending and len(editing) < ready:
            return 0.0
        left = sum(max(0.0, edit - (now - j.started)) for j in editing) + len(self._pending) * edit
        return left / max(1, ready) + (0.0 if ready else edit)  # no worker ready: one is being replaced

    def _retry_after(self) -> int:
        return max(1, math.ceil(self._edit_seconds() / max(1, sum(self._ready))))  # about when a worker frees

    def _expire(self, job: Job) -> bool:
        """Under the lock: fail a job that is still queued at its deadline; whether it was."""
        if job.state != "queued" or time.monotonic() < job.deadline:
            return False
        if job in self._pending:
            self._pending.remove(job)
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

    def _take(self, slot: int) -> tuple[Job, bytes] | _RenderTask | object | None:
        """This slot's next re-render, else the next queued job, marked editing, and its photo; None after
        HEALTH_SECONDS without either; _STOP when the pool closes. Jobs found past their deadline fail on
        the way (504)."""
        expired = []
        try:
            with self._lock:
                if not self._pending and not self._renders[slot] and not self._closed:
                    self._wake.wait(HEALTH_SECONDS)
                if self._renders[slot] and not self._closed:
                    return self._renders[slot].popleft()
                while not self._closed and self._pending:
                    job = self._pending.popleft()
                    if self._expire(job):
                        expired.append(job)
                        continue
                    job.state, job.started = "editing", time.monotonic()
                    photo, job.photo = job.photo, None
                    return job, photo
                return _STOP if self._closed else None
        finally:
            for job in expired:
                job.future.set_result(job)

    def _run(self, slot: int):
        """A runner thread: keeps one worker process healthy and feeds it jobs, one at a time."""
        worker, pinged = self._workers[slot], time.monotonic()
        while True:
            if worker is None or not worker.alive():
                if worker is not None:
                    print("faceattr serve: an idle edit worker died; replacing it", file=sys.stderr, flush=True)
                self._drop_renders(slot, "this edit's worker stopped, and its latents with it: edit again")
                worker = self._replace(slot, worker)
                if worker is None:
                    return
                pinged = time.monotonic()
            taken = self._take(slot)
            if taken is _STOP:
                break
            if isinstance(taken, _RenderTask):
                try:
                    reply = worker.render(taken.job_id, taken.strength)
                except (EOFError, OSError):
                    reply = None
                if reply is None:  # dead or hung: replaced at the top of the loop
                    reply = "gone", "this edit's worker stopped answering, and its latents went with it: edit again"
                    worker.stop()
                    worker = None
                taken.future.set_result(reply)
                continue
            if taken is None:  # idle: is the worker still there, and answering?
                if time.monotonic() - pinged > PING_SECONDS:
                    pinged = time.monotonic()
                    if not worker.ping(PING_TIMEOUT):
                        print("faceattr serve: an idle edit worker did not answer; replacing it", file=sys.stderr,
                              flush=True)
                        worker.stop()
                        worker = None
                continue
            job, photo = taken
            try:
                reply = worker.edit(job, photo)
            except _Lost:  # it was dead before the job reached it: the job goes back first in the queue
                with self._lock:
                    closed = self._closed
                    if closed:
                        self._end(job, "failed", 503, "the server is stopping")
                    else:
                        job.state, job.started, job.stage, job.photo = "queued", None, None, photo
                        self._pending.appendleft(job)
                        self._wake.notify()
                if closed:
                    job.future.set_result(job)
                worker.stop()
                worker = None
                continue
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
                    job.image, job.report, job.worker = reply[1], reply[2], worker
                    self._measured(time.monotonic() - job.started)
                    self._end(job, "done")
                else:
                    if reply[0] == "timeout":  # at least this long: the estimate learns it too
                        self._measured(time.monotonic() - job.started)
                    self._end(job, "failed", {"refused": 422, "timeout": 504, "error": 500}[reply[0]], reply[1])
            job.future.set_result(job)
        self._drop_renders(slot, "the server is stopping")
        worker.stop()

    def _drop_renders(self, slot: int, why: str):
        """Answer this slot's waiting re-renders with Gone."""
        with self._lock:
            tasks = list(self._renders[slot])
            self._renders[slot].clear()
        for task in tasks:
            task.future.set_result(("gone", why))

    def _replace(self, slot: int, old: _Worker | None) -> _Worker | None:
        """A fresh, warmed-up worker for a dead or killed one (None if the pool is closing or it would
        not load). The slot takes no jobs meanwhile."""
        with self._lock:
            self._ready[slot] = False
            self._workers[slot] = None
            closed = self._closed
            if closed:
                self._alive -= 1
        if old is not None:
            old.stop()
        if closed:
            return None
        worker = _Worker(*self._spawn_args)
        with self._lock:
            self._workers[slot] = worker  # not ready yet, but close() kills it too
            closing = self._closed
        if closing:
            worker.process.kill()
        try:
            facts = worker.ready(self._load_timeout)
        except FaceattrError as e:
            worker.stop()
            if not self._closed:
                print(f"faceattr serve: could not restart an edit worker: {e}", file=sys.stderr)
            with self._lock:
                self._alive -= 1
                if not self._alive:  # nothing will take the queued jobs
                    dropped = list(self._pending)
                    self._pending.clear()
                    for job in dropped:
                        job.photo = None
                        self._end(job, "failed", 503, "no edit worker is running (see the server log)")
                else:
                    dropped = []
            for job in dropped:
                job.future.set_result(job)
            return None
        with self._lock:
            if self._closed:
                closed = True
                self._alive -= 1
            else:
                self._ready[slot] = True
                self._measured(facts["warmup_seconds"])
        if closed:
            worker.stop()
            return None
        return worker
