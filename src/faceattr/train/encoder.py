"""Train the inversion encoder E_inv: image -> z, a start for S31 (beyond the patent).

Trained on G-Net's own samples, whose latents are known: x = G(z), z ~ N(0, I); loss
MSE(E(x), z) + rec_weight * MSE(G(E(x)), x) (the second term backpropagates through the frozen
G-Net), Adam. Checkpoints resume exactly (weights, optimiser, RNG, latent stream); every checkpoint
measures the latent error and the reconstruction PSNR on fixed held-out samples (and on real faces
with --data) and exports `encoder.safetensors` to the run folder.
"""

import torch
import torch.nn.functional as F

from faceattr import weights
from faceattr.edit.invert import psnr
from faceattr.errors import FaceattrError
from faceattr.imaging import to_float
from faceattr.nets.encoder import ENC_KEYS, Encoder
from faceattr.train import loop
from faceattr.train.config import EncoderConfig
from faceattr.weights import load_generator


def _amp(device, enabled):
    return torch.autocast(device.type, torch.bfloat16, enabled=enabled)


class Trainer(loop.Trainer):
    distributed = False

    def __init__(self, cfg: EncoderConfig):
        super().__init__(cfg)
        self.dev, self.batch_images = self.dist.device, cfg.batch
        self.g = load_generator(cfg.gnet).to(self.dev)
        self.real = None
        if cfg.data:
            from faceattr.data.dataset import FaceDataset

            val = FaceDataset(cfg.data, self.g.resolution, split="val")
            self.real = to_float(val.images[:cfg.eval_n])
        loop.seed_all(cfg.seed)
        self.e = Encoder(self.g.z_dim, self.g.resolution, cfg.width).to(self.dev)
        self.opt = torch.optim.Adam(self.e.parameters(), cfg.lr)
        self.z_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.eval_z = torch.randn(cfg.eval_n, self.g.z_dim, generator=torch.Generator().manual_seed(12345))
        self.resume()

    def net_config(self):
        return {k: getattr(self.e, k) for k in ENC_KEYS}

    def state(self):
        return {"net": self.net_config(), "E": self.e.state_dict(), "opt": self.opt.state_dict(),
                "z_gen": self.z_gen.get_state()}

    def load_state(self, s):
        if s["net"] != self.net_config():
            raise FaceattrError(f"{self.ckpt_path}: saved for {s['net']}, not {self.net_config()} (other G-Net?)")
        self.e.load_state_dict(s["E"])
        self.opt.load_state_dict(s["opt"])
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

    def checkpoint(self, losses):
        row = {"kimg": self.nimg / 1000, **losses, **self.evaluate()}
        self.history.append(row)
        self.log.log(self.step, **row)
        weights.save(self.e, self.out / "encoder.safetensors", "encoder", self.net_config(),
                     card={"gnet": str(self.cfg.gnet), "kimg": self.nimg / 1000, **row})
        self.save()
        return row


def train(cfg: EncoderConfig):
    return Trainer(cfg).run()
