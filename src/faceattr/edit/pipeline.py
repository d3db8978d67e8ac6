"""Edit face attributes in real photos: the patent's S3 (claim 1) around detection and paste-back.

`Editor.edit` runs the public stages in order, for ALL faces of ALL photos at once (one batch: far
cheaper per face than one at a time):

    detect -> align -> invert (S31) -> search (S32) -> decode (S33) -> paste (S33) -> report

Two G-Nets sit behind one interface (`nets.generator`), chosen by `gnet`:
- MobileStyleGAN (default), the FFHQ generator that drew the corpus: S31 finds w1 in its W space (an
  encoder's start, then the patent's loss) and fits a copy of G-Net's weights to each face around w1
  (`tune`), S32 descends the patent's loss along E-Net's pooled attribute directions (`nets.directions`)
  through the untuned G-Net, whose latent space those directions describe, S33 decodes both latents with
  the face's tuned copy at the crop's own resolution and adds the change G(w2) - G(w1) to the photo's
  pixels over the head (`redraw`: G(w2) itself where the change is large). As in PTI: the edit is found in
  the generator's own space and drawn by the one fitted to the person (docs/EXPERIMENTS.md).
- the patent's 64 px G-Net (`gnet="patent"` or a run's weights): S31 in z, S32 by E-Net's per-face
  gradient, S33 the change low-passed and amplified until E-Net reads the edit (`gains`).
`replace=True` pastes G(z2) itself instead (the patent's literal S33), colour-matched through G(z1).
"""

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from faceattr import weights
from faceattr.edit import align
from faceattr.edit import invert as s31
from faceattr.edit import search as s32
from faceattr.edit import transfer as s33
from faceattr.edit.options import PATENT_DEFAULTS, RANGES, STYLEGAN_DEFAULTS, EditOptions, check_number, parse_edits
from faceattr.errors import FaceattrError
from faceattr.imaging import grid, to_float
from faceattr.memory import keep_freed_memory
from faceattr.nets.generator import Generator, MobileStyleGAN, PatentGNet
from faceattr.weights import load_classifier, load_generator

DEBUG_SIZE = 128  # side of each tile of the debug strip
STYLE_WORKING = 128  # MobileStyleGAN's S31 resolution (docs/EXPERIMENTS.md: fidelity and cost per resolution)
GAIN_LADDER = (1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.5, 4.0, 4.5, 5.0)


@dataclass
class Session:
    """What `Editor.render` needs to redraw one photo's edit at another strength, with no S31 or S32:
    the photo, and per edited face (face, grey, z1, the S32 move at strength 1, its generator, G(z1))."""

    photo: np.ndarray
    size: int  # the side S33 decodes at
    faces: list[tuple] = field(default_factory=list)


@dataclass
class Stages:
    """What one `Editor.edit` batch's stages found, per face in job order: what `Editor.report` reads."""

    edits: dict
    strength: float
    z1: torch.Tensor  # S31's latents
    z2: torch.Tensor  # S32's latents
    inversion: dict  # S31's mse, psnr, steps (of the tuning, when it ran)
    search: dict  # S32's info: reached, steps, ...
    s_photo: np.ndarray  # E-Net's scores of the aligned photo crops
    g1: np.ndarray  # S33's decodes of z1 and z2, uint8
    g2: np.ndarray
    gains: np.ndarray
    grey: list


@dataclass
class Result:
    """One photo's outcome: the edited photo (None if it failed), one report per edited face, the
    debug strip (rows aligned original | G(z1) | G(z2) | result, one per face), the error and, when
    asked for (`Editor.edit(keep=True)`), the Session that re-renders it at another strength."""

    image: np.ndarray | None
    faces: list[dict] = field(default_factory=list)
    debug: np.ndarray | None = None
    error: str | None = None
    session: Session | None = None

    @property
    def report(self) -> dict:
        return {"error": self.error, "faces": self.faces} if self.error else {"faces": self.faces}


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, h, h, 3) -> (N, size, size, 3), bicubic up / area down."""
    if images.shape[1] == size:
        return images
    interp = cv2.INTER_CUBIC if size > images.shape[1] else cv2.INTER_AREA
    return np.stack([cv2.resize(im, (size, size), interpolation=interp) for im in images])


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3)."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def pick_rungs(s: np.ndarray, s0: np.ndarray, targets, result_goal: float, strength=1.0) -> np.ndarray:
    """Per face, the first rung of the gain ladder at which every attribute's score `s` (rungs, N, A) is
    past the goal (`result_goal` for target 1, 1 - result_goal for 0, moved `strength` of the way from
    the photo's own score s0 (N, A)); where no rung is, the one with the edit read most. -> (N,) rungs."""
    t = np.asarray(targets, np.float32)
    goal = np.where(t == 1, result_goal, 1 - result_goal)
    thresh = s0 + np.asarray(strength, np.float32).reshape(-1, 1) * (goal - s0)
    ok = np.where(t == 1, s >= thresh, s <= thresh).all(-1)  # (rungs, N)
    strongest = np.where(t == 1, s, 1 - s).sum(-1).argmax(0)
    return np.where(ok.any(0), ok.argmax(0), strongest)


def load_gnet(gnet=None) -> Generator:
    """None or "mobilestylegan": MobileStyleGAN from the installed random-face files; "patent": the
    shipped 64 px G-Net; a path: a patent G-Net run's checkpoint.pt or exported .safetensors; a module as it is."""
    if isinstance(gnet, Generator):
        return gnet
    if isinstance(gnet, torch.nn.Module):
        return PatentGNet(gnet)
    if gnet is None or str(gnet) == "mobilestylegan":
        return MobileStyleGAN(early_exit=True)
    return PatentGNet(load_generator(None if str(gnet) == "patent" else gnet))


class Editor:
    """G-Net + E-Net (+ S31 encoder, + S32 directions for MobileStyleGAN) ready to edit photos.

    gnet: see `load_gnet`. enet / encoder / directions: a module or a weights file; None loads the
    shipped one (the encoder only if one ships for this G-Net; encoder=False: none, S31 starts from
    the mean latent for MobileStyleGAN and from random z for the patent G-Net).
    options: an EditOptions; keyword `changes` replace single fields of it (Editor(invert_steps=5)).
    """

    def __init__(self, gnet=None, enet=None, encoder=None, directions=None, device="cpu",
                 options: EditOptions | None = None, **changes):
        options = (options or EditOptions()).updated(**changes)
        keep_freed_memory()  # S31's passes no longer page-fault their activations afresh (faceattr.memory)
        self.device = torch.device(device)
        self.G = load_gnet(gnet).to(self.device)
        self.stylegan = isinstance(self.G, MobileStyleGAN)
        self.options = options.resolved(STYLEGAN_DEFAULTS if self.stylegan else PATENT_DEFAULTS)
        self.E = (enet if isinstance(enet, torch.nn.Module) else load_classifier(enet)).to(self.device)
        self.attr_names = list(self.E.attr_names)
        self.resolution = STYLE_WORKING if self.stylegan else self.G.native_resolution
        # S32 draws at E-Net's own resolution (shipped: 64 px, a third of 128 px's cost, as good; docs/EXPERIMENTS.md)
        self.search_resolution = self.E.resolution
        if not self.stylegan and self.E.resolution != self.resolution:
            raise FaceattrError(f"the E-Net takes {self.E.resolution} px faces but G-Net draws {self.resolution} px")
        self.encoder = self._encoder(encoder)
        self.directions = None
        if self.stylegan:
            self.directions = directions if isinstance(directions, torch.nn.Module) else \
                weights.load_directions(directions)
            missing = [a for a in self.attr_names if a not in self.directions.attr_names]
            if missing:
                raise FaceattrError(f"the S32 directions lack {', '.join(missing)}, which E-Net judges: "
                                    f"run `faceattr train directions` with this E-Net")
        self.feature_fn = s31.discriminator_features(options.features) if options.features else None
        align.face_mask(8, self.options.feather, self.options.mask)

    def _encoder(self, encoder):
        """The S31 start for this G-Net: an image -> latent network, shipped (if one is) or given."""
        if encoder is False:
            return None
        load = weights.load_style_encoder if self.stylegan else weights.load_encoder
        if encoder is None:
            try:
                weights.shipped_path("style_encoder" if self.stylegan else "encoder")
            except FaceattrError:
                return None
        net = encoder if isinstance(encoder, torch.nn.Module) else load(encoder)
        if net.resolution != self.resolution:
            raise FaceattrError(f"the encoder takes {net.resolution} px faces but S31 runs at {self.resolution} px")
        return net.to(self.device)

    def goals(self, edits: dict) -> list[tuple[int, int]]:
        """{name: 0|1} -> [(E-Net output index, target)]; unknown names and bad targets are one-line errors."""
        edits = parse_edits(list(edits.items()), self.attr_names)
        return [(self.attr_names.index(name), target) for name, target in edits.items()]

    # ---- the stages ----------------------------------------------------------------------

    def detect(self, photo) -> list:
        """Faces of one RGB uint8 photo, largest first (YuNet)."""
        return align.detect_faces(photo)

    def align(self, photo, face) -> align.AlignedFace:
        """The face cut out and aligned like the corpus, at the S31 working resolution."""
        return align.align(photo, face, self.resolution)

    def scores(self, images: np.ndarray) -> np.ndarray:
        """E-Net's s for every attribute of uint8 faces (any square size) -> (N, A)."""
        x = to_float(resize(images, self.E.resolution)).to(self.device)
        with torch.no_grad():
            return torch.sigmoid(self.E(x).float()).cpu().numpy()

    def invert(self, crops: np.ndarray, valid: np.ndarray | None = None, grey=None):
        """S31: the encoder's start (if any), then the patent's loss 1/2 (O - G(z))^2 for `invert_steps`.
        crops: uint8 (N, R, R, 3) aligned faces at the working resolution; valid: (N, R, R) share of each
        pixel inside its photo; grey: (N,) bool, faces of grey photos -> (latents (N, *latent_shape), info)."""
        o = self.options
        target = to_float(crops).to(self.device)
        init = None
        if self.encoder is not None:
            with torch.no_grad():
                init = self.encoder(target).flatten(1)
        elif self.stylegan:
            init = self.G.mean_latent().flatten(1).repeat(len(crops), 1).to(self.device)
        working = s31.AtResolution(self.G, self.resolution)
        z, info = s31.invert(working, target, steps=o.invert_steps, restarts=o.restarts, init=init, lr=o.invert_lr,
                             prior_weight=0.0 if self.stylegan else o.prior_weight, feature_fn=self.feature_fn,
                             feature_weight=o.feature_weight, bf16=o.bf16,
                             valid=None if valid is None else torch.from_numpy(np.asarray(valid, np.float32))[:, None],
                             grey=None if grey is None else torch.tensor(list(grey)))
        return z.view(len(z), *self.G.latent_shape), info

    def tune(self, crops: np.ndarray, latents, valid: np.ndarray | None = None, grey=None, edits: dict | None = None):
        """S31's pivotal tuning: G-Net's weights fitted to each face around its latent (`s31.tune`), for
        `tune_steps`; with `edits`, the locality term looks where S32 will go (each edited attribute's
        direction, signed towards its target) -> (one generator per face, or None with tune_steps 0; info or None)."""
        if not self.options.tune_steps:
            return None, None
        toward = None
        if edits is not None and self.directions is not None:
            goals = self.goals(edits)
            edited = [self.attr_names[i] for i, _ in goals]
            moves, _ = self.directions.split(edited, [])
            toward = moves * torch.tensor([1.0 if t else -1.0 for _, t in goals])[:, None]
        return s31.tune(self.G, latents, to_float(crops).to(self.device), self.resolution,
                        steps=self.options.tune_steps, lr=self.options.tune_lr, locality=self.options.tune_locality,
                        radius=self.options.max_distance, toward=toward,
                        valid=None if valid is None else torch.from_numpy(np.asarray(valid, np.float32))[:, None],
                        grey=grey)

    def search(self, latents, edits: dict, strength=None):
        """S32: latents that add (1) or remove (0) each attribute of `edits` -> (latents2, info), through the
        untuned G-Net (through the tuned copies it went further and kept the person less; docs/EXPERIMENTS.md).
        On a CPU MobileStyleGAN faces go one at a time: a batch of 8 costs 15 batches of 1 there (cache-bound)."""
        goals, o = self.goals(edits), self.options
        strength = o.strength if strength is None else strength
        if self.stylegan and self.device.type == "cpu":
            strength = torch.as_tensor(strength, dtype=torch.float32).reshape(-1).expand(len(latents))
            parts = [self._search(latents[i:i + 1], goals, strength[i:i + 1]) for i in range(len(latents))]
            latents2 = torch.cat([w for w, _ in parts])
            return latents2, {k: torch.cat([info[k] for _, info in parts]) for k in parts[0][1]}
        return self._search(latents, goals, strength)

    def _search(self, latents, goals, strength):
        G, o = self.G, self.options
        if self.stylegan:
            edited = [self.attr_names[i] for i, _ in goals]
            held = [a for a in self.attr_names if a not in edited]
            moves, holds = self.directions.split(edited, held)
            return s32.search_along(G, self.E, latents, goals, moves.to(self.device), holds.to(self.device),
                                    steps=o.search_steps, goal=o.search_goal, hold=o.hold,
                                    lr=o.search_lr, max_distance=o.max_distance, resolution=self.search_resolution,
                                    strength=strength)
        names = [self.attr_names[i] for i, _ in goals]
        E = self.E.judging(names)
        return s32.search(G, E, latents, [(E.index(n), t) for n, (_, t) in zip(names, goals)],
                          steps=o.search_steps, strength=strength, goal=o.search_goal, prior_weight=o.prior_weight,
                          identity_weight=o.identity_weight, lr=o.search_lr, bf16=o.bf16)

    def decode(self, latents, size: int, generators=None) -> np.ndarray:
        """S33: G(latents) as uint8 (N, size, size, 3). MobileStyleGAN draws at full resolution first, tuned
        generators (one per face) too: their fitted blocks feed the untuned finer ones, which add the detail
        the working resolution lacks (docs/EXPERIMENTS.md)."""
        res = self.G.native_resolution if self.stylegan else self.resolution
        with torch.no_grad():
            if generators is not None:
                out = [g.synthesize(latents[i:i + 1].to(self.device), res) for i, g in enumerate(generators)]
            else:
                out = [self.G.synthesize(latents[i:i + 2].to(self.device), res) for i in range(0, len(latents), 2)]
        x = torch.cat(out)
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="area" if size < x.shape[-1] else "bicubic")
        return to_uint8(x)

    def gains(self, crops, s_photo, g1, g2, goals, strength, grey) -> np.ndarray:
        """S33's gain on G(z2) - G(z1) per face (patent G-Net), (N,): `gain` if set; else the smallest of
        GAIN_LADDER at which E-Net scores every edited attribute of the pasted crop past `result_goal`
        (moved `strength` of the way from the photo's own score `s_photo`, as in S32), or, where none
        does, the one it reads most (past some gain G-Net's own errors, amplified too, read less so).
        MobileStyleGAN's change is pasted as it is: 1."""
        o = self.options
        if self.stylegan or o.replace or o.gain is not None:
            return np.full(len(crops), 1.0 if self.stylegan or o.replace else o.gain, np.float32)
        s = self.rung_scores(crops, g1, g2, goals, grey)
        rung = pick_rungs(s, s_photo[:, [i for i, _ in goals]], [t for _, t in goals], o.result_goal, strength)
        return np.asarray(GAIN_LADDER, np.float32)[rung]

    @torch.no_grad()
    def rung_scores(self, crops, g1, g2, goals, grey) -> np.ndarray:
        """E-Net's s of each edited attribute, (rungs, N, len(goals)), on the aligned crops with the change
        G(z2) - G(z1) pasted in (this editor's mask, blur and grey rule) at each gain of GAIN_LADDER."""
        x, a, b = (to_float(v).to(self.device) for v in (crops, g1, g2))
        is_grey = torch.tensor(list(grey), device=self.device).view(-1, 1, 1, 1)
        m = torch.from_numpy(align.face_mask(self.resolution, self.options.feather, self.options.mask)).to(self.device)
        names = [self.attr_names[i] for i, _ in goals]
        E = self.E.judging(names)
        columns = [E.index(n) for n in names]
        s = []
        for gain in GAIN_LADDER:  # one rung at a time: memory stays that of one batch of crops
            cand = x + m * (self.transferred(x, a, b, gain, is_grey) - x)
            s.append(torch.sigmoid(E(cand).float()[:, columns]).cpu().numpy())
        return np.stack(s)

    def transferred(self, original, g1, g2, gain, grey):
        """s33.transfer with this editor's blur (patent G-Net; none for MobileStyleGAN), then the grey value
        only where `grey` (a bool tensor broadcast over (B, 3, H, W)): G-Net draws in colour."""
        edited = s33.transfer(original, g1, g2, blur=0.0 if self.stylegan else self.options.blur, gain=gain,
                              redraw=self.options.redraw)
        return torch.where(grey, s31.luminance(edited), edited)

    def paste(self, canvas, photo, face, g1, g2, grey=False, gain=1.0) -> np.ndarray:
        """S33 into the photo: `canvas` (the photo, maybe with other faces already pasted) with this face's
        edit, made from `photo`'s own pixels at the face's native resolution. g1, g2: uint8 faces
        (any size). A grey photo gets only the grey value of the change."""
        big = align.align(photo, face, align.native_size(face))
        size = big.crop.shape[0]
        mask = align.face_mask(size, self.options.feather, self.options.mask)
        g1, g2 = resize(np.stack([g1, g2]), size)
        if not self.options.replace:  # the photo's pixels plus the change G(z2) - G(z1)
            edited = self.transferred(to_float(big.crop[None]), to_float(g1[None]), to_float(g2[None]), float(gain),
                                      torch.tensor(bool(grey)))
            edited = ((edited[0].permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.float32)  # not rounded
            return align.paste_back(canvas, edited, big.matrix, mask=mask, reference_crop=big.crop)
        edited = align.match_colour(g2, big.crop, mask, reference=g1)
        if grey:
            edited = cv2.cvtColor(cv2.cvtColor(edited, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        return align.paste_back(canvas, edited, big.matrix, mask=mask)

    # ---- the whole job ---------------------------------------------------------------------

    def edit(self, photos, edits: dict, strength=None, all_faces=None, debug: bool = False,
             on_stage=None, keep: bool = False) -> list[Result]:
        """Edit `edits` ({attribute: 1 to add, 0 to remove}) in every photo (RGB uint8 arrays).

        strength / all_faces: None takes this editor's options. The largest face of each photo is edited,
        or every face with all_faces. A photo where no face is found gets a Result with `error` set and
        no image; the others are still edited. Each face's report: box, edits, E-Net's s per attribute on
        the aligned photo, G(z1), G(z2) and the result, the inversion's mse and psnr_db, steps, whether
        S32 reached its goal, and seconds per stage (S31/S32/S33: the batch's time, shared by its faces).
        on_stage: called with "detect", "S31", "S32", "S33" as each stage starts (e.g. to show progress).
        keep: each Result keeps its Session, so `render` can redraw it at any strength (MobileStyleGAN only).
        """
        if keep and not self.stylegan:
            raise FaceattrError("re-rendering at another strength needs MobileStyleGAN: the patent G-Net's "
                                "strength is where its search stops, so each strength is a new edit")
        goals, photos, o = self.goals(edits), list(photos), self.options
        strength = o.strength if strength is None else float(strength)
        check_number("strength", strength, *RANGES["strength"])
        all_faces = o.all_faces if all_faces is None else all_faces
        stage = on_stage or (lambda name: None)
        stage("detect")
        results, jobs = [], []  # jobs: (photo index, AlignedFace at the working resolution, seconds per stage)
        for i, photo in enumerate(photos):
            t = time.perf_counter()
            try:
                faces, error = self.detect(photo), "no face found"
            except FaceattrError as e:  # not an RGB uint8 picture: this photo fails, the batch goes on
                faces, error = [], str(e)
            detect = time.perf_counter() - t
            results.append(Result(image=None, error=None if faces else error))
            for face in faces if all_faces else faces[:1]:
                t = time.perf_counter()
                crop = self.align(photo, face)
                jobs.append((i, crop, {"detect": detect, "align": time.perf_counter() - t}))
        if not jobs:
            return results

        crops = np.stack([c.crop for _, c, _ in jobs])
        grey = [align.is_grey(c.crop) for _, c, _ in jobs]  # a grey photo stays grey (see paste)
        stage("S31")
        t = time.perf_counter()
        valid = np.stack([c.valid for _, c, _ in jobs])
        z1, inv = self.invert(crops, valid, grey)
        generators, tuned = self.tune(crops, z1, valid, grey, edits)
        stage("S32")
        t_invert, t = time.perf_counter() - t, time.perf_counter()
        z2, found = self.search(z1, edits, strength)
        stage("S33")
        t_search, t = time.perf_counter() - t, time.perf_counter()
        size = max(align.native_size(c.face) for _, c, _ in jobs) if self.stylegan else self.resolution
        g1, g2 = self.decode(z1, size, generators), self.decode(z2, size, generators)
        s_photo = self.scores(crops)
        gains = self.gains(crops, s_photo, resize(g1, self.resolution), resize(g2, self.resolution), goals,
                           strength, grey)
        t_decode = time.perf_counter() - t

        for k, (i, crop, secs) in enumerate(jobs):  # several faces of one photo paste one after another
            t = time.perf_counter()
            results[i].image = self.paste(results[i].image if results[i].image is not None else photos[i],
                                          photos[i], crop.face, g1[k], g2[k], grey[k], gains[k])
            secs.update(invert=t_invert, search=t_search, decode=t_decode, paste=time.perf_counter() - t)
            if keep:
                results[i].session = results[i].session or Session(photos[i], size)
                results[i].session.faces.append((crop.face, grey[k], z1[k:k + 1], found["step"][k:k + 1],
                                                 None if generators is None else generators[k], g1[k]))
        if tuned is not None:  # the inversion the edit starts from is the tuned one
            inv = {**inv, "mse": tuned["mse"], "psnr": tuned["psnr"], "tune_steps": tuned["steps"]}
        self.report(results, jobs, photos, Stages(edits, strength, z1, z2, inv, found, s_photo, g1, g2, gains, grey),
                    debug)
        return results

    def render(self, session: Session, strength: float) -> np.ndarray:
        """S33 again from a kept Session: the photo with each face's edit at `strength` (0 to MAX_STRENGTH),
        decoded and pasted from the latents S32 already found."""
        check_number("strength", strength, *RANGES["strength"])
        canvas = session.photo
        for face, grey, z1, step, generator, g1 in session.faces:
            w2 = z1 + strength * (step[:, None] if z1.ndim == 3 else step)
            g2 = self.decode(w2, session.size, None if generator is None else [generator])
            canvas = self.paste(canvas, session.photo, face, g1, g2[0], grey)
        return canvas

    def report(self, results, jobs, photos, st: Stages, debug: bool):
        """Fill each Result's per-face reports (and debug strips) from the batch's `Stages`."""
        edited = np.stack([self.align(results[i].image, c.face).crop for i, c, _ in jobs])
        s = {"photo": st.s_photo, "before": self.scores(st.g1), "after": self.scores(st.g2),
             "result": self.scores(edited)}
        distance = (st.z2 - st.z1).flatten(1).norm(dim=1) if self.stylegan else None
        inv, found = st.inversion, st.search
        rows = {}
        for k, (i, crop, secs) in enumerate(jobs):
            results[i].faces.append({
                "box": [round(float(v), 1) for v in crop.face.box],
                "detection_score": round(float(crop.face.score), 4),
                "edits": dict(st.edits),
                "strength": st.strength,
                "gnet": self.G.name,
                "s": {a: {when: round(float(v[k, j]), 4) for when, v in s.items()}
                      for j, a in enumerate(self.attr_names)},
                "reached": bool(found["reached"][k]),
                "inversion": {"mse": round(float(inv["mse"][k]), 6), "psnr_db": round(float(inv["psnr"][k]), 3),
                              "encoder_start": self.encoder is not None},
                "steps": {"invert": int(inv["steps"]), "tune": int(inv.get("tune_steps", 0)),
                          "search": int(found["steps"][k])},
                "latent_distance": None if distance is None else round(float(distance[k]), 3),
                "mode": "replace" if self.options.replace else "transfer",
                "mask": self.options.mask,
                "gain": float(st.gains[k]),
                "grey": st.grey[k],
                "batch_faces": len(jobs),
                "seconds": {stage: round(v, 4) for stage, v in secs.items()},
            })
            if debug:
                rows.setdefault(i, []).extend([align.align(photos[i], crop.face, DEBUG_SIZE).crop,
                                               *resize(np.stack([st.g1[k], st.g2[k]]), DEBUG_SIZE),
                                               align.align(results[i].image, crop.face, DEBUG_SIZE).crop])
        for i, tiles in rows.items():
            results[i].debug = np.asarray(grid(np.stack(tiles), ncol=4))
