"""Network weights as safetensors with their constructor config in the metadata.

The package ships default weights in `faceattr/weights/` (see the model cards there); a user's
own run checkpoint (`checkpoint.pt`) or exported `.safetensors` loads through the same calls.
"""

import json
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from faceattr.errors import FaceattrError
from faceattr.fileio import atomic_path

SHIPPED = {"gnet": "gnet.safetensors", "enet": "enet.safetensors",
           "encoder": "encoder.safetensors"}


def shipped_path(name: str) -> Path:
    path = Path(str(resources.files("faceattr") / "weights" / SHIPPED[name]))
    if not path.exists():
        raise FaceattrError(f"shipped weights {path.name} are missing from the package; pass --checkpoint")
    return path


def save(module: torch.nn.Module, path, kind: str, config: dict, half: bool = True, card: dict | None = None):
    """Save a module's weights (fp16 by default: ample for inference, half the size)."""
    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous()
               for k, v in module.state_dict().items()}
    meta = {"kind": kind, "config": json.dumps(config), "card": json.dumps(card or {})}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load(path, kind: str):
    """-> (state_dict in float32, config dict) from a .safetensors written by `save`."""
    path = Path(path)
    if not path.exists():
        raise FaceattrError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as e:  # safetensors raises several types for a damaged file
        raise FaceattrError(f"{path}: not a readable safetensors file ({e})") from None
    if meta.get("kind") != kind:
        raise FaceattrError(f"{path}: holds {meta.get('kind')!r} weights, expected {kind!r}")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, json.loads(meta["config"])


def load_network(cls, path, kind: str, from_checkpoint):
    """`cls` in eval mode with gradients off, from an exported .safetensors of `kind` or from a
    training run's checkpoint.pt, where `from_checkpoint(ckpt) -> (state_dict, config)`."""
    path = Path(path)
    if path.suffix == ".pt":
        from faceattr.training.runtime import load_checkpoint

        if not path.exists():
            raise FaceattrError(f"{path}: no such checkpoint")
        state, config = from_checkpoint(load_checkpoint(path))
    else:
        state, config = load(path, kind)
    net = cls(**config)
    net.load_state_dict(state)
    return net.eval().requires_grad_(False)
