import os
import signal
import subprocess
import sys
import time

import pytest

from faceattr import fileio
from faceattr.fileio import STALE_SECONDS, atomic_path, write_text


def temps(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert target.read_text() == "old" and temps(tmp_path) == []


def test_kill_9_during_a_write_leaves_a_temp_that_the_next_write_removes(tmp_path):
    """A writer killed mid-write leaves .out.png.PID-XXXXXXXX.png; the next write to out.png removes it
    (its PID is gone), but not a live writer's, nor another target's, unless older than STALE_SECONDS."""
    code = ("import sys, time; from faceattr.fileio import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n    print(tmp, flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "out.png")], stdout=subprocess.PIPE, text=True)
    left = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert temps(tmp_path) == [os.path.basename(left)] and os.path.getsize(left) == 0
    live = tmp_path / f".out.png.{os.getppid()}-0123abcd.png"  # a live writer's (our parent's PID)
    other = tmp_path / ".out.png.json.1-0123abcd.json"  # another target's
    legacy = tmp_path / ".out.png.k2j_8zq1.png"  # tempfile.mkstemp's, from before: no PID, removed when old
    for p in (live, other, legacy):
        p.touch()
    write_text(tmp_path / "out.png", "new")
    assert temps(tmp_path) == sorted(p.name for p in (live, other, legacy))
    old = time.time() - STALE_SECONDS - 10
    os.utime(legacy, (old, old))
    os.utime(live, (old, old))
    assert sorted(fileio.remove_stale_temps(tmp_path / "out.png")) == sorted([legacy, live])
    assert temps(tmp_path) == [other.name] and (tmp_path / "out.png").read_text() == "new"
