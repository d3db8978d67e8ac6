"""Train G-Net against D-Net: patent steps S11-S14.

S11  G's output is D's input (fake = G(z); D(fake)).
S12  G frozen: D learns real faces -> 1, G's outputs -> 0 (binary cross-entropy), Adam.
S13  D frozen: G learns to make D say 1 for its outputs (the non-saturating loss), Adam.
S14  repeat until D can no longer tell: at every checkpoint we measure D's accuracy on held-out
     real faces and fresh samples and the realism of G's samples, and stop on a budget of images,
     of minutes, or when realism stops improving.

Beyond the patent, each switchable: spectral norm in D, hinge loss, lazy R1 penalty, an EMA of
G's weights (what ships), DiffAugment, bf16 autocast and channels_last. Runs as one process or
under `torchrun --nproc_per_node N` (DistributedDataParallel).
"""

import copy

import torch
import torch.nn.functional as F

from faceattr import weights
from faceattr.errors import FaceattrError
from faceattr.imaging import save_grid, to_float
from faceattr.nets.gnet import Discriminator, Generator
from faceattr.nets.gnet import GEN_KEYS, decode
from faceattr.train import loop
from faceattr.train.augment import diff_augment, parse_policy
from faceattr.train.config import GanConfig


def build_networks(cfg: GanConfig):
    g = Generator(cfg.z_dim, cfg.resolution, cfg.width)
    d = Discriminator(cfg.resolution, cfg.width, spectral=cfg.spectral)
    return g, d


def d_loss(real_logits, fake_logits, kind):
    """S12: real faces labelled 1, G's outputs labelled 0."""
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def g_loss(fake_logits, kind):
    """S13: G's outputs labelled 1 (non-saturating BCE), or hinge's -D(G(z))."""
    if kind == "hinge":
        return -fake_logits.mean()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


@torch.no_grad()
def d_accuracy(d, g, real_u8, z, device):
    """S14's question, on data D never trained on: how often D still tells held-out real from fresh fake."""
    d.eval()  # spectral norm must not take a power-iteration step here
    real = to_float(real_u8).to(device)
    fake = g(z.to(device))
    acc_real = (d(real) > 0).float().mean().item()
    acc_fake = (d(fake) < 0).float().mean().item()
    d.train()
    return acc_real, acc_fake


class Trainer(loop.Trainer):
    fixed = ("resolution", "z_dim", "width", "spectral")

    def __init__(self, cfg: GanConfig):
        from faceattr.data.dataset import FaceDataset

        super().__init__(cfg)
        parse_policy(cfg.augment)
        if cfg.batch % (4 * self.dist.world):
            raise FaceattrError(f"--batch {cfg.batch} must be a multiple of 4 x {self.dist.world} processes")
        self.train_set = FaceDataset(cfg.data, cfg.resolution, split="train")
        self.val_set = FaceDataset(cfg.data, cfg.resolution, split="val")
        dev, self.batch_images = self.dist.device, cfg.batch
        self.fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        loop.seed_all(cfg.seed)  # the same initial weights in every process
        g, d = build_networks(cfg)
        loop.seed_all(cfg.seed + self.dist.rank)  # then each process draws its own latents
        self.g, self.d = g.to(dev, memory_format=self.fmt), d.to(dev, memory_format=self.fmt)
        self.g_ema = copy.deepcopy(self.g).eval().requires_grad_(False)
        self.opt_g = torch.optim.Adam(self.g.parameters(), cfg.lr_g, betas=(cfg.beta1, 0.999))
        self.opt_d = torch.optim.Adam(self.d.parameters(), cfg.lr_d, betas=(cfg.beta1, 0.999))
        self.data_gen = torch.Generator().manual_seed(cfg.seed + 1000 * self.dist.rank)
        self.resume()
        # Wrap after loading so every process starts from rank 0's identical weights.
        self.g_ddp, self.d_ddp = self.dist.wrap(self.g), self.dist.wrap(self.d)
        fixed = torch.Generator().manual_seed(12345)
        self.fixed_z = torch.randn(64, cfg.z_dim, generator=fixed)
        self.eval_z = torch.randn(max(cfg.eval_n, 256), cfg.z_dim, generator=fixed)
        self.realism = None

    # --- checkpoints: everything needed to continue exactly where we stopped ---
    def state(self):
        return {"G": self.g.state_dict(), "D": self.d.state_dict(), "G_ema": self.g_ema.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "data_gen": self.data_gen.get_state()}

    def load_state(self, s):
        self.g.load_state_dict(s["G"])
        self.d.load_state_dict(s["D"])
        self.g_ema.load_state_dict(s["G_ema"])
        self.opt_g.load_state_dict(s["opt_g"])
        self.opt_d.load_state_dict(s["opt_d"])
        if self.dist.world == 1:  # RNG streams are per process; a changed world size starts fresh ones
            self.data_gen.set_state(s["data_gen"])

    def checkpoint(self, losses):
        """Rank 0: S14's figures, a sample grid from fixed latents, then the atomic checkpoint."""
        cfg, dev = self.cfg, self.dist.device
        self.g_ema.eval()
        n = min(256, len(self.val_set))
        acc_real, acc_fake = d_accuracy(self.d, self.g, self.val_set.images[:n], self.eval_z[:n], dev)
        row = {"kimg": self.nimg / 1000, **losses, "d_acc_real_heldout": acc_real, "d_acc_fake": acc_fake}
        if cfg.eval_n:
            from faceattr.eval.realism import Realism

            self.realism = self.realism or Realism(self.val_set.images)
            row.update(self.realism(decode(self.g_ema, self.eval_z[:cfg.eval_n].to(dev))))
        self.history.append(row)
        self.log.log(self.step, **row)
        kimg = f"{self.nimg // 1000:06d}"
        save_grid(decode(self.g_ema, self.fixed_z.to(dev)), self.out / "samples" / f"{kimg}.png", 8)
        # Small G-Net snapshots: any one can be evaluated or shipped later (an early one is FD's ceiling).
        weights.save(self.g_ema, self.out / "snapshots" / f"gnet-{kimg}.safetensors", "gnet",
                     {k: getattr(self.g_ema, k) for k in GEN_KEYS})
        self.save()
        return row

    def plateaued(self):
        p = self.cfg.patience
        fds = [h["fd_sface"] for h in self.history if "fd_sface" in h]
        return p > 0 and len(fds) > p and min(fds[-p:]) >= min(fds[:-p])

    def finished(self):
        return super().finished() or self.plateaued()  # S14

    # --- S12 and S13 ---
    def train_step(self):
        cfg, dev = self.cfg, self.dist.device
        b = cfg.batch // self.dist.world
        amp = torch.autocast(dev.type, torch.bfloat16, enabled=cfg.bf16)
        idx = torch.randint(len(self.train_set), (b,), generator=self.data_gen).numpy()
        real = to_float(self.train_set.batch(idx)).to(dev, memory_format=self.fmt)

        # S12: G frozen (no graph through G); D learns real -> 1, fake -> 0. One D pass on [real; fake].
        self.d.requires_grad_(True)
        with torch.no_grad(), amp:
            fake = self.g(torch.randn(b, cfg.z_dim, device=dev))
        with amp:
            logits = self.d_ddp(diff_augment(torch.cat([real, fake.float()]), cfg.augment)).float()
            loss_d = d_loss(logits[:b], logits[b:], cfg.loss)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        r1 = torch.zeros(())
        if cfg.r1_gamma > 0 and self.step % cfg.r1_every == 0:
            # Lazy R1 (StyleGAN2): penalise D's gradient on real faces, scaled by the interval.
            real_r = real.detach().requires_grad_(True)
            with amp:
                out = self.d_ddp(diff_augment(real_r, cfg.augment)).float()
            (grad,) = torch.autograd.grad(out.sum(), real_r, create_graph=True)
            r1 = grad.float().pow(2).sum(dim=[1, 2, 3]).mean()
            self.opt_d.zero_grad(set_to_none=True)
            (r1 * cfg.r1_gamma / 2 * cfg.r1_every).backward()
            self.opt_d.step()

        # S13: D frozen; G learns to make D label its outputs 1. Gradients flow through D into G only.
        self.d.requires_grad_(False)
        with amp:
            fake = self.g_ddp(torch.randn(b, cfg.z_dim, device=dev))
            loss_g = g_loss(self.d(diff_augment(fake, cfg.augment)).float(), cfg.loss)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()

        self.step += 1
        self.nimg += cfg.batch
        ema_nimg = min(cfg.ema_kimg * 1000, self.nimg * 0.05)  # ramp up: early G changes fast
        loop.update_ema(self.g_ema, self.g, 0.5 ** (cfg.batch / max(ema_nimg, 1e-8)))
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "r1": r1.item()}


def train(cfg: GanConfig):
    return Trainer(cfg).run()
