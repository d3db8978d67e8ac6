"""Train the inversion encoder E_inv: image -> z, a start for S31 (beyond the patent).

Trained on G-Net's own samples, whose latents are known: x = G(z), z ~ N(0, I); loss
MSE(E(x), z) + rec_weight * MSE(G(E(x)), x) (the second term backpropagates through the frozen
G-Net), Adam. Checkpoints resume exactly (weights, optimiser, RNG, latent stream); every checkpoint
measures the latent error and the reconstruction PSNR on fixed held-out samples (and on real faces
with --data) and exports `encoder.safetensors` to the run folder.
"""

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from faceattr import weights
from faceattr.edit.invert import psnr
from faceattr.errors import FaceattrError
from faceattr.imaging import to_float
from faceattr.nets.encoder import ENC_KEYS, Encoder
from faceattr.train import loop
from faceattr.weights import load_generator


@dataclass
class EncoderConfig:
    gnet: str
    out: str
    data: str = ""  # optional corpus: also report reconstruction PSNR on its real validation faces
    width: int = 2048  # channels = width / resolution, capped at 512 (as D-Net)
    batch: int = 32
    lr: float = 2e-4
    rec_weight: float = 1.0
    bf16: bool = True
    max_kimg: float = 200.0
    max_minutes: float = 0.0  # 0 = no time budget
    ckpt_kimg: float = 5.0
    eval_n: int = 128
    seed: int = 0


def _amp(device, enabled):
    return torch.autocast(device.type, torch.bfloat16, enabled=enabled)


class Trainer:
    def __init__(self, cfg: EncoderConfig):
        self.cfg, self.dev = cfg, torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.g = load_generator(cfg.gnet).to(self.dev)
        loop.seed_all(cfg.seed)
        self.e = Encoder(self.g.z_dim, self.g.resolution, cfg.width).to(self.dev)
        self.opt = torch.optim.Adam(self.e.parameters(), cfg.lr)
        self.step, self.nimg, self.history = 0, 0, []
        self.z_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.eval_z = torch.randn(cfg.eval_n, self.g.z_dim, generator=torch.Generator().manual_seed(12345))
        self.real = None
        if cfg.data:
            from faceattr.data.dataset import FaceDataset

            val = FaceDataset(cfg.data, self.g.resolution, split="val")
            self.real = to_float(val.images[:cfg.eval_n])
        self.ckpt_path = self.out / "checkpoint.pt"
        if self.ckpt_path.exists():
            self.resume(weights.load_checkpoint(self.ckpt_path))

    def net_config(self):
        return {k: getattr(self.e, k) for k in ENC_KEYS}

    def state(self):
        return {"config": dataclasses.asdict(self.cfg), "net": self.net_config(), "step": self.step,
                "nimg": self.nimg, "history": self.history, "E": self.e.state_dict(), "opt": self.opt.state_dict(),
                "rng": loop.rng_state(), "z_gen": self.z_gen.get_state()}

    def resume(self, s):
        if s["net"] != self.net_config():
            raise FaceattrError(f"{self.ckpt_path}: saved for {s['net']}, not {self.net_config()} (other G-Net?)")
        self.e.load_state_dict(s["E"])
        self.opt.load_state_dict(s["opt"])
        self.step, self.nimg, self.history = s["step"], s["nimg"], s["history"]
        loop.set_rng_state(s["rng"])
        self.z_gen.set_state(s["z_gen"])

    def train_step(self):
        cfg = self.cfg
        z = torch.randn(cfg.batch, self.g.z_dim, generator=self.z_gen).to(self.dev)
        with torch.no_grad(), _amp(self.dev, cfg.bf16):
            x = self.g(z).float()
        with _amp(self.dev, cfg.bf16):
            z_hat = self.e(x).float()
            loss_z = F.mse_loss(z_hat, z)
            loss_rec = F.mse_loss(self.g(z_hat).float(), x) if cfg.rec_weight else torch.zeros((), device=self.dev)
            loss = loss_z + cfg.rec_weight * loss_rec
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        self.nimg += cfg.batch
        return {"loss": loss.item(), "loss_z": loss_z.item(), "loss_rec": loss_rec.item()}

    @torch.no_grad()
    def evaluate(self):
        """Held-out figures: latent MSE and G(E(x)) PSNR on fixed samples (and real faces with --data)."""
        self.e.eval()
        z = self.eval_z.to(self.dev)
        x = self.g(z)
        z_hat = self.e(x)
        row = {"val_z_mse": F.mse_loss(z_hat, z).item(),
               "val_psnr_fake": psnr((self.g(z_hat) - x).pow(2).flatten(1).mean(1)).mean().item()}
        if self.real is not None:
            real = self.real.to(self.dev)
            row["val_psnr_real"] = psnr((self.g(self.e(real)) - real).pow(2).flatten(1).mean(1)).mean().item()
        self.e.train()
        return row

    def checkpoint(self, log, losses):
        row = {"kimg": self.nimg / 1000, **losses, **self.evaluate()}
        self.history.append(row)
        log.log(self.step, **row)
        weights.save(self.e, self.out / "encoder.safetensors", "encoder", self.net_config(),
                     card={"gnet": str(self.cfg.gnet), "kimg": self.nimg / 1000, **row})
        weights.save_checkpoint(self.ckpt_path, self.state())
        return row

    def run(self):
        cfg = self.cfg
        log = loop.MetricLog(self.out, self.step if self.nimg else None)
        (self.out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
        t0, ckpt = time.time(), int(cfg.ckpt_kimg * 1000)
        next_ckpt = (self.nimg // ckpt + 1) * ckpt
        bar = tqdm(total=int(cfg.max_kimg * 1000), initial=self.nimg, unit="img", unit_scale=True, dynamic_ncols=True)
        while self.nimg < cfg.max_kimg * 1000:
            losses = self.train_step()
            bar.update(cfg.batch)
            if self.step % 10 == 0 and self.nimg < next_ckpt:
                bar.set_postfix(loss=f"{losses['loss']:.4f}")
                log.log(self.step, **losses)
            timeout = bool(cfg.max_minutes and time.time() - t0 > cfg.max_minutes * 60)
            if self.nimg >= next_ckpt or self.nimg >= cfg.max_kimg * 1000 or timeout:
                next_ckpt += ckpt
                bar.write(" ".join(f"{k}={v:.4g}" for k, v in self.checkpoint(log, losses).items()))
                if timeout:
                    break
        bar.close()
        log.close()
        return self.history


def train(cfg: EncoderConfig):
    return Trainer(cfg).run()
