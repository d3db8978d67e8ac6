"""Network weights as safetensors with their constructor config in the metadata, training checkpoints,
and the loaders and exporters of every shipped network (G-Net, E-Net, the encoder) with their model cards.

The package ships default weights in `faceattr/weights/` (see the model cards there); a user's
own run checkpoint (`checkpoint.pt`) or exported `.safetensors` loads through the same calls.
"""

import json
import pickle
import re
import warnings
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from faceattr.errors import FaceattrError
from faceattr.fileio import atomic_path, write_text
from faceattr.nets.directions import Directions
from faceattr.nets.encoder import Encoder, StyleEncoder
from faceattr.nets.enet import ENet, ENetGroup, enet_from_config, select_heads
from faceattr.nets.gnet import GEN_KEYS, Generator

SHIPPED = {"gnet": "gnet.safetensors", "enet": "enet.safetensors",
           "encoder": "encoder.safetensors", "style_encoder": "style_encoder.safetensors",
           "directions": "directions.safetensors"}


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


def reason(e: BaseException) -> str:
    """A short, one-line account of what a failed read or load_state_dict found."""
    if isinstance(e, KeyError):
        return f"no {e.args[0]!r} in it" if e.args else "a key is missing"
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if lines and lines[0].startswith("Error(s) in loading state_dict"):
        lines = lines[1:]
    text = "; ".join(lines) or type(e).__name__
    return text if len(text) <= 240 else text[:237] + "..."


def existing_file(path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FaceattrError(f"{path}: no such {what}")
    if not path.is_file():
        raise FaceattrError(f"{path}: a folder, not a {what}")
    return path


def load(path, kind: str):
    """-> (state_dict in float32, config dict) from a .safetensors written by `save`."""
    path = existing_file(path, "weights file")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as e:  # safetensors raises several types for a damaged file
        raise FaceattrError(f"{path}: not a readable safetensors file ({reason(e)})") from None
    if meta.get("kind") != kind:
        raise FaceattrError(f"{path}: holds {meta.get('kind')!r} weights, expected {kind!r}")
    try:
        config = json.loads(meta["config"])
    except (KeyError, ValueError) as e:
        raise FaceattrError(f"{path}: its metadata has no readable network config ({reason(e)})") from None
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, config


def save_checkpoint(path, state: dict):
    """Write atomically: a kill during the write leaves the previous checkpoint intact. Only tensors and
    plain data (dicts, lists, numbers, strings), so that `load_checkpoint` can read it without pickle's code."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path) -> dict:
    """A checkpoint.pt as a dict, read with weights_only=True: a file whose unpickling would call
    anything (run code) is refused before anything runs; a damaged one is a one-line FaceattrError."""
    path = existing_file(path, "checkpoint")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Detected pickle protocol ..." on foreign files
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))  # torch's weights-only unpickler refused an import
        if found:
            raise FaceattrError(f"{path}: refused: loading it would call {found[1].rstrip('.')}, and a "
                                "checkpoint holds only tensors and plain data (it may run code)") from None
        raise FaceattrError(f"{path}: not a readable checkpoint (not a torch.save file, or damaged)") from None
    except EOFError:
        what = "empty" if path.stat().st_size == 0 else "cut short"
        raise FaceattrError(f"{path}: not a readable checkpoint (the file is {what})") from None
    except Exception as e:  # torch raises RuntimeError, KeyError, ... for a truncated or foreign file
        raise FaceattrError(f"{path}: not a readable checkpoint ({reason(e).split('. ')[0]})") from None
    if not isinstance(ckpt, dict):
        raise FaceattrError(f"{path}: not a training checkpoint (it holds a {type(ckpt).__name__}, not a dict)")
    return ckpt


def load_network(cls, path, kind: str, from_checkpoint):
    """`cls` in eval mode with gradients off, from an exported .safetensors of `kind` or from a
    training run's checkpoint.pt, where `from_checkpoint(ckpt) -> (state_dict, config)`."""
    path = Path(path)
    if path.suffix == ".pt":
        try:
            state, config = from_checkpoint(load_checkpoint(path))
        except (KeyError, TypeError) as e:
            raise FaceattrError(f"{path}: not a training checkpoint of {kind} ({reason(e)})") from None
    else:
        state, config = load(path, kind)
    try:
        net = cls(**config)
    except (TypeError, ValueError, KeyError) as e:
        raise FaceattrError(f"{path}: its {kind} config {config} does not build a network ({reason(e)})") from None
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, KeyError) as e:
        raise FaceattrError(f"{path}: its weights do not fit a {kind} of config {config} ({reason(e)})") from None
    return net.eval().requires_grad_(False)


def load_generator(checkpoint=None) -> Generator:
    """G-Net in eval mode with gradients off. A training checkpoint gives its EMA weights."""
    path = checkpoint or shipped_path("gnet")
    return load_network(Generator, path, "gnet",
                                lambda ckpt: (ckpt["G_ema"], {k: ckpt["config"][k] for k in GEN_KEYS}))


def export_generator(checkpoint, out, card: dict | None = None):
    """Run checkpoint -> shippable G-Net safetensors (EMA weights, fp16)."""
    g = load_generator(checkpoint)
    save(g, out, "gnet", {k: getattr(g, k) for k in GEN_KEYS}, card=card)


def load_classifier(path=None) -> ENet | ENetGroup:
    """E-Net in eval mode with gradients off: the shipped one (default), a run's checkpoint.pt (its
    best-validation weights, S23; the latest, or their average with --ema-kimg, before the first validation)
    or an exported .safetensors (one E-Net, or a group of them from `export_classifier`)."""
    if path is None:
        try:
            path = shipped_path("enet")
        except FaceattrError:
            raise FaceattrError("no E-Net is shipped yet: train one (`faceattr train classifier`) and pass its "
                                "checkpoint.pt or exported .safetensors") from None
    return load_network(enet_from_config, path, "enet",
                                lambda ckpt: (ckpt["E_best"] or ckpt.get("E_ema") or ckpt["E"], ckpt["net"]))


def export_classifier(checkpoints, out) -> Path:
    """Finished runs' checkpoint.pt (one path or several) -> one shippable E-Net .safetensors (best-validation
    weights, fp16) with its model card (data, config, test metrics, command) in the metadata and beside it
    as .md. From several runs, an ENetGroup: each attribute is judged by the first run that judges it."""
    checkpoints = [checkpoints] if isinstance(checkpoints, (str, Path)) else checkpoints
    nets, cards, taken = [], [], set()
    for checkpoint in map(Path, checkpoints):
        if checkpoint.suffix != ".pt":
            raise FaceattrError(f"{checkpoint}: export takes a training run's checkpoint.pt")
        e = load_classifier(checkpoint)
        ckpt = load_checkpoint(checkpoint)
        if not ckpt.get("test_metrics"):
            raise FaceattrError(f"{checkpoint}: the run has not finished (no test metrics yet); resume it first")
        keep = [a for a in e.attr_names if a not in taken]
        if not keep:
            raise FaceattrError(f"{checkpoint}: every attribute it judges comes from an earlier run")
        nets.append(select_heads(e, keep) if keep != e.attr_names else e)
        taken.update(keep)
        try:
            cards.append({"model": "E-Net attribute judge (patent S21-S23)", "data": ckpt["data"],
                          "config": ckpt["config"], "command": ckpt["command"], "epochs_trained": ckpt["epoch"],
                          "trained_from": ckpt.get("lineage", []), "best_epoch": ckpt["best_epoch"] + 1,  # 1-based
                          "test_metrics": {a: ckpt["test_metrics"][a] for a in keep}})
        except (KeyError, TypeError) as err:
            raise FaceattrError(f"{checkpoint}: not a finished E-Net run's checkpoint ({reason(err)})") from None
    net = nets[0] if len(nets) == 1 else ENetGroup(nets)
    card = cards[0] if len(cards) == 1 else {
        "model": "E-Net group: one E-Net per attribute set (patent S21-S23)", "members": cards,
        "test_metrics": {a: m for c in cards for a, m in c["test_metrics"].items()}}
    save(net, out, "enet", net.net_config(), card=card)
    write_text(Path(out).with_suffix(".md"), model_card_markdown(card))
    return Path(out)


def model_card_markdown(card: dict, h: str = "#") -> str:
    """`h`: the title's heading level (a group's members are sections of its card)."""
    if "members" in card:
        return f"{h} {card['model']}\n\n" + "\n".join(
            model_card_markdown({**m, "model": "E-Net for " + ", ".join(m["test_metrics"])}, h + "#")
            for m in card["members"])

    def f(v):
        return "n/a" if v is None else f"{v:.4f}"

    rows = "\n".join(f"| {a} | {f(m['accuracy'])} | {f(m['balanced_accuracy'])} | {f(m['roc_auc'])} | {f(m['ece'])} "
                     f"| {f(m['positive_rate'])} | {m['n']} |" for a, m in card["test_metrics"].items())
    history = "".join(f"{i + 1}. `{r['command']}`: {r['epochs']} epochs, best at {r['best_epoch']}; test accuracy "
                      + (", ".join(f"{a} {v:.4f}" for a, v in r["test_accuracy"].items())
                         or "not measured (stopped before its test)") + "\n"
                      for i, r in enumerate(card.get("trained_from", [])))
    history = f"Started from the weights of (oldest first):\n\n{history}\n" if history else ""
    return (f"{h} {card['model']}\n\nCommand: `{card['command']}`\n\n{history}Data: `{json.dumps(card['data'])}`\n\n"
            f"Best validation loss at epoch {card['best_epoch']} of {card['epochs_trained']}.\n\n"
            f"{h}# Test split\n\n| attribute | accuracy | balanced acc. | ROC AUC | ECE | positive rate | n |\n"
            f"|---|---|---|---|---|---|---|\n{rows}\n\n"
            f"{h}# Config\n\n```\n{json.dumps(card['config'], indent=2)}\n```\n")


def load_encoder(path=None) -> Encoder:
    """Encoder in eval mode with gradients off: shipped, a training run's checkpoint.pt or a .safetensors."""
    return load_network(Encoder, path or shipped_path("encoder"), "encoder",
                                lambda ckpt: (ckpt["E"], ckpt["net"]))


def exported_only(kind: str):
    """from_checkpoint for networks that are trained by scripts, not runs: a .pt is refused in one line."""
    def refuse(ckpt):
        raise TypeError(f"{kind} weights come as an exported .safetensors")
    return refuse


def load_directions(path=None) -> Directions:
    """S32's attribute directions for MobileStyleGAN (`faceattr train directions`): the shipped ones or a file."""
    return load_network(Directions, path or shipped_path("directions"), "directions", exported_only("directions"))


def load_style_encoder(path=None) -> StyleEncoder:
    """MobileStyleGAN's S31 encoder (`nets.encoder.StyleEncoder`): the shipped one or a .safetensors."""
    return load_network(StyleEncoder, path or shipped_path("style_encoder"), "style_encoder",
                        exported_only("style_encoder"))
