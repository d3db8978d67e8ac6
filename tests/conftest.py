"""Shared fixtures: tiny face-like corpora the tests make themselves (no ../shared, no network)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image


def face_like(rng, size):
    """A smooth random blob picture: enough structure for a few GAN steps, cheap to make."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.zeros((size, size, 3))
    for c in range(3):
        cy, cx, r = rng.uniform(0.3, 0.7, 3)
        img[..., c] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.05 + 0.1 * r))
    return (img * 255).astype(np.uint8)


@pytest.fixture
def tiny_corpus(tmp_path):
    """A CelebA-layout folder of 40 unlabelled 16x16 images."""
    root = tmp_path / "corpus"
    (root / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(face_like(rng, 16)).save(root / "img_align_celeba" / f"{i:06d}.png")
    return root


@pytest.fixture
def two_processes(tmp_path):
    """Run a training under `torchrun --standalone --nproc_per_node 2` and check that both processes
    end with the same, changed weights. Call with `setup` (code that builds a Trainer `t`) and `nets`
    (its trained modules, e.g. "t.g, t.d"); returns the number of steps run."""

    def run(setup: str, nets: str) -> int:
        script = tmp_path / "ddp.py"
        script.write_text(textwrap.dedent(setup) + textwrap.dedent(f"""
            import torch, torch.distributed as dist
            flat = lambda: torch.cat([p.detach().flatten() for net in ({nets},) for p in net.parameters()])
            before = flat().clone()
            t.dist.close = lambda: None  # keep the group for the check below
            t.run()
            after = flat()
            both = [torch.zeros_like(after) for _ in range(2)]
            dist.all_gather(both, after)
            assert torch.equal(both[0], both[1]), "ranks diverged"
            assert not torch.equal(before, after), "no training"
            if dist.get_rank() == 0:
                open({str(tmp_path / 'steps')!r}, "w").write(str(t.step))
            dist.destroy_process_group()
        """))
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                            str(script)], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert r.returncode == 0, r.stderr[-3000:]
        return int((tmp_path / "steps").read_text())

    return run
