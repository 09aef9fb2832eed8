"""Learned purification: the recogniser's owner trains a small denoiser to undo the public protection tool.

Threat model (docs/adversaries.md, "Learned purification and robust fine-tuning"; cf. PuFace and diffusion purification): the owner protects
photos of people it already has (an identity bank of the run, never the evaluated users) with the public method
under test (``context.method``, its surrogates, a universal method fitted per person), trains a denoiser on the
(protected, clean) pairs, and runs every photo it scrapes through it before recognition, the clean gallery too.

The denoiser is DnCNN-shaped (Zhang et al., TIP 2017) and small: ``layers`` 3 x 3 convolutions of ``width``
channels with ReLU, predicting the perturbation (residual learning), fully convolutional so it runs on the whole
canvas; its last layer starts at zero, so it starts as the identity. It trains on random ``patch`` x ``patch``
patches of the face box (L1 loss, Adam, cosine schedule), half of them clean -> clean so it leaves unprotected
photos alone: a few minutes on a CPU at the defaults, seconds on a GPU
(``context.device``). The trained weights are cached in ``context.cache_dir`` under a key of the method, its
config, its surrogates, the owner's photos and this config (the denoiser does not depend on the target, so
every target of a run reuses it). ``info()`` reports the time protecting the owner's photos and training took.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from attacks._adaptive import (
    cache_key,
    cache_path,
    owner_people,
    protected_pairs,
    require_context,
    save_atomic,
)
from attacks.base import Adversary, check_range
from bench.api import ADVERSARIES, FACE_BOX, AdversaryContext, Need, Target


@dataclass
class PurificationConfig:
    identities: int = 12  # the owner's people protected for training
    photos: int = 4  # photos per person
    width: int = 32
    layers: int = 5
    patch: int = 48
    batch: int = 16
    steps: int = 400
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        check_range("purification identities", self.identities, 2, 10_000)
        check_range("purification photos", self.photos, 2, 1_000)
        check_range("purification width", self.width, 4, 256)
        check_range("purification layers", self.layers, 2, 30)
        check_range("purification patch", self.patch, 16, FACE_BOX[1] - FACE_BOX[0])
        check_range("purification batch", self.batch, 1, 1_024)
        check_range("purification steps", self.steps, 1, 1_000_000)
        check_range("purification lr", self.lr, 0.0, 1.0, open_low=True)


class Denoiser(nn.Module):
    """x -> x - residual(x), clamped to [0, 1]."""

    def __init__(self, width: int, layers: int):
        super().__init__()
        convs: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(layers - 2):
            convs += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        last = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(last.weight)  # start as the identity: training only ever has to learn the perturbation
        nn.init.zeros_(last.bias)
        convs.append(last)
        self.residual = nn.Sequential(*convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.residual(x)).clamp(0, 1)


def random_patches(protected: torch.Tensor, clean: torch.Tensor, count: int, size: int,
                   gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` aligned patch pairs from the face box; the second half are clean -> clean."""
    lo, hi = FACE_BOX
    idx = torch.randint(0, len(clean), (count,), generator=gen)
    ys = torch.randint(lo, hi - size + 1, (count,), generator=gen)
    xs = torch.randint(lo, hi - size + 1, (count,), generator=gen)
    inputs, targets = [], []
    for j, (i, y, x) in enumerate(zip(idx.tolist(), ys.tolist(), xs.tolist(), strict=True)):
        source = protected if j < (count + 1) // 2 else clean
        inputs.append(source[i, :, y : y + size, x : x + size])
        targets.append(clean[i, :, y : y + size, x : x + size])
    return torch.stack(inputs), torch.stack(targets)


class PurifiedTarget(Target):
    """A recogniser that purifies every canvas before its embedding (no gradients)."""

    differentiable = False

    def __init__(self, target: Target, denoiser: Denoiser, batch: int = 16):
        self.inner, self.denoiser, self.batch = target, denoiser.eval(), batch
        self.config, self._loaded = target.config, True
        self.name, self.framing, self.embedding_dim = target.name, target.framing, target.embedding_dim

    def purify(self, canvases: torch.Tensor) -> torch.Tensor:
        device = next(self.denoiser.parameters()).device
        with torch.no_grad():
            return torch.cat([self.denoiser(canvases[i : i + self.batch].to(device)).to(canvases.device)
                              for i in range(0, len(canvases), self.batch)])

    def embed(self, canvases: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.inner.embed(self.purify(canvases))

    def thresholds(self, data: str | None) -> dict[str, float]:
        return self.inner.thresholds(data)


@ADVERSARIES.register("purification")
class Purification(Adversary):
    kind = "adaptation"
    Config = PurificationConfig

    def __init__(self, config: PurificationConfig | None = None):
        super().__init__(config)
        self._info: dict[str, Any] = {}

    def needs(self) -> list[Need]:
        return [owner_people(self.config.identities, self.config.photos)]

    def adapt(self, target: Target, context: AdversaryContext | None = None) -> Target:
        context = require_context(context, "purification")
        self._info = {}
        if context.method is None:
            return target
        t0 = time.perf_counter()
        denoiser, facts = self.denoiser(context)
        # adapt_s: what building the adaptation cost (protecting the owner's photos + training), also when it
        # now comes from the cache; wall_s: this call.
        self._info = {**facts, "adapt_s": facts["protect_public_s"] + facts["train_s"],
                      "wall_s": time.perf_counter() - t0}
        return PurifiedTarget(target, denoiser)

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def training_step(self, target: Target, photos: torch.Tensor) -> tuple[Any, int]:
        cfg = self.config
        net = Denoiser(cfg.width, cfg.layers).to(photos.device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        gen = torch.Generator().manual_seed(cfg.seed)

        def step() -> None:
            x, y = random_patches(photos, photos, cfg.batch, cfg.patch, gen)
            loss = (net(x) - y).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        return step, cfg.steps

    def denoiser(self, context: AdversaryContext) -> tuple[Denoiser, dict[str, Any]]:
        """The trained denoiser for the method under test, from the cache or trained now."""
        cfg = self.config
        pairs = protected_pairs(context, cfg.identities, cfg.photos, cfg.seed)
        device = torch.device(context.device)
        key = cache_key("purifier", context.code_version(self), pairs.key, dataclasses.asdict(cfg))
        path = cache_path(context, "purification", key)
        net = Denoiser(cfg.width, cfg.layers).to(device)
        facts = {"protect_public_s": pairs.seconds, "pairs": len(pairs.protected), "identities": pairs.identities,
                 "cache_key": key}
        if path.exists():
            saved = torch.load(path, weights_only=True)
            net.load_state_dict(saved["state"])
            return net, {**facts, "train_s": float(saved["train_s"]), "final_l1": float(saved["final_l1"]),
                         "cached": True}
        gen = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
        t0 = time.perf_counter()
        recent: list[float] = []
        net.train()
        for _ in range(cfg.steps):
            x, y = random_patches(pairs.protected, pairs.clean, cfg.batch, cfg.patch, gen)
            loss = (net(x.to(device)) - y.to(device)).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            recent = [*recent[-49:], float(loss.detach())]
        train_s = time.perf_counter() - t0
        net.eval()
        final = sum(recent) / len(recent)
        save_atomic({"state": {k: v.cpu() for k, v in net.state_dict().items()}, "train_s": train_s,
                     "final_l1": final}, path)
        return net, {**facts, "train_s": train_s, "final_l1": final, "cached": False}
