"""The two-process runner of conftest.py: which failures it retries (issue 22.5)."""

import textwrap

import pytest

# rank 1 fails on its first `times` runs (a marker file counts them), the way `how` says
SCRIPT = """
    import os, pathlib
    import torch.distributed as dist
    dist.init_process_group("gloo")
    runs = pathlib.Path({marker!r})
    if dist.get_rank() == 1 and len(runs.read_text()) < {times}:
        runs.write_text(runs.read_text() + "x")
        {how}
    dist.barrier()
    dist.destroy_process_group()
"""


def script(tmp_path, how, times):
    marker = tmp_path / "runs"
    marker.write_text("")
    path = tmp_path / "run.py"
    path.write_text(textwrap.dedent(SCRIPT).format(marker=str(marker), times=times, how=how))
    return path


def test_a_rank_killed_by_a_signal_is_retried_once_with_a_warning(tmp_path, torchrun):
    with pytest.warns(UserWarning, match="signal 6"):
        torchrun(script(tmp_path, "os.abort()", 1), tmp_path)
    assert "SIGABRT" in (tmp_path / "torchrun1.log").read_text()
    assert not (tmp_path / "torchrun2.log").exists()


def test_a_second_signal_fails(tmp_path, torchrun):
    with pytest.warns(UserWarning), pytest.raises(pytest.fail.Exception, match="attempt 2"):
        torchrun(script(tmp_path, "os.abort()", 2), tmp_path)


def test_a_python_error_fails_at_once(tmp_path, torchrun):
    with pytest.raises(pytest.fail.Exception, match="attempt 1"):
        torchrun(script(tmp_path, "raise ValueError('boom')", 1), tmp_path)
    assert "boom" in (tmp_path / "torchrun1.log").read_text()
    assert (tmp_path / "runs").read_text() == "x"
