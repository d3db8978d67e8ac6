"""Atomic file writes: a reader never sees a half-written output, a crash leaves the old file.

A write goes to a hidden temporary beside the target, `.NAME.PID-XXXXXXXX.EXT`, renamed onto it at the
end. A writer killed with SIGKILL leaves its temporary behind; the next write to the same target removes
the ones whose writer (PID) is gone, and any older than STALE_SECONDS (a PID can be reused, and on a
shared file system the writer may run elsewhere).
"""

import contextlib
import os
import re
import secrets
import time
from pathlib import Path

STALE_SECONDS = 3600


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, another user's
        return True
    return True


def remove_stale_temps(path, suffix=None):
    """Remove the temporaries of earlier, killed writes to `path`; -> the paths removed."""
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    # ours: .NAME.PID-XXXXXXXX.EXT; older faceattr: .NAME.XXXXXXXX.EXT (tempfile.mkstemp)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:(\d+)-[0-9a-f]{{8}}|[a-z0-9_]{{8}}){re.escape(suffix)}")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if not m:
            continue
        with contextlib.suppress(OSError):
            pid = int(m.group(1)) if m.group(1) else None
            dead = pid is not None and pid != os.getpid() and not _pid_alive(pid)
            if dead or now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    `suffix` keeps the extension for writers that choose a format from it (PIL, numpy).
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path, suffix)
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # our temporary (and some writers) make 0600; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path, data: bytes):
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path, text: str):
    write_bytes(path, text.encode("utf-8"))


def save_image(img, path, **kwargs):
    """Save a PIL image atomically; the format follows the extension of `path`."""
    with atomic_path(path) as tmp:
        img.save(tmp, **kwargs)
