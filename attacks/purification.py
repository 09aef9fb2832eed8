"""Learned purification: the recogniser's owner trains a small denoiser to undo the public protection tool.

Threat model (docs/adversaries.md, "Learned purification and robust fine-tuning"; PuFace: J. Wen, "PuFace:
Defending against Facial Cloaking Attacks for Facial Recognition Models", arXiv 2406.02253, 2024): the owner protects photos of people
it already has (an identity bank of the run, never the evaluated users) with the public method under test
(``context.method``, its surrogates, a universal method fitted per person), trains a purifier on the (protected,
clean) pairs, and runs every photo it scrapes through it before recognition, the clean gallery too.

The purifier is DnCNN-shaped (Zhang et al., TIP 2017) and small: ``layers`` 3 x 3 convolutions of ``width``
channels with ReLU, predicting the perturbation (residual learning); its last layer starts at zero, so it starts as
the identity. As in PuFace, it is trained in the owner's recogniser's feature space: the loss is
``1 - cos(f(purify(x)), f(clean))`` plus ``pixel_weight`` x the L1 distance to the clean photo, over the owner's
protected photos and, as many, their clean photos (so clean photos keep their embedding). A pixel loss alone does
not work: a protection's per-photo perturbation cannot be predicted from the photo, and for noise it cannot
predict, the output nearest the clean photo in L1 is the input itself (measured: such a purifier stayed the
identity). The purifier works on the window of the canvas that the recogniser's own crop takes (plus the
convolutions' reach) and leaves the rest of the canvas as it is. Adam with a cosine schedule, ``steps`` steps of
``batch`` owner photos (each protected and clean): a few minutes per target on a CPU, seconds on a GPU
(``context.device``). Where this differs from PuFace: a small DnCNN, not PuFace's RedNet encoder-decoder; no
amplified cloaks in training; the owner's own recogniser gives the feature loss.

The recogniser's owner trains for its own recogniser, so a differentiable target is needed (a black box fails its
cells with the reason), and what is trained is cached in ``context.cache_dir`` per target, under a key of the
method, its config, its surrogates, the owner's photos, the target and this config. ``info()`` reports the time
protecting the owner's photos and training took.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attacks._adaptive import (
    cache_key,
    cache_path,
    owner_people,
    protected_pairs,
    require_context,
    require_differentiable,
    save_atomic,
    trainable,
)
from attacks.base import Adversary, check_range
from bench.api import ADVERSARIES, CANVAS_SIZE, AdversaryContext, Need, Target


@dataclass
class PurificationConfig:
    identities: int = 12  # the owner's people protected for training
    photos: int = 4  # photos per person
    width: int = 32
    layers: int = 5
    batch: int = 8  # owner photos per step, each protected and clean
    steps: int = 200
    lr: float = 1e-3
    pixel_weight: float = 1.0  # weight of the L1 image loss next to the feature loss (PuFace combines both)
    seed: int = 0

    def __post_init__(self) -> None:
        check_range("purification identities", self.identities, 2, 10_000)
        check_range("purification photos", self.photos, 2, 1_000)
        check_range("purification width", self.width, 4, 256)
        check_range("purification layers", self.layers, 2, 30)
        check_range("purification batch", self.batch, 1, 1_024)
        check_range("purification steps", self.steps, 1, 1_000_000)
        check_range("purification lr", self.lr, 0.0, 1.0, open_low=True)
        check_range("purification pixel_weight", self.pixel_weight, 0.0, 1_000.0)


class Denoiser(nn.Module):
    """x -> x - residual(x), clamped to [0, 1]; weights drawn from ``gen`` (a generator seeded 0 when None, as when
    saved weights are loaded at once): torch's global RNG stays untouched."""

    def __init__(self, width: int, layers: int, gen: torch.Generator | None = None):
        gen = gen if gen is not None else torch.Generator().manual_seed(0)
        super().__init__()
        convs: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(layers - 2):
            convs += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        last = nn.Conv2d(width, 3, 3, padding=1)
        convs.append(last)
        self.residual = nn.Sequential(*convs)
        for conv in self.residual:
            if isinstance(conv, nn.Conv2d):  # PyTorch's default initialisation, from the given generator
                nn.init.kaiming_uniform_(conv.weight, a=math.sqrt(5), generator=gen)
                bound = 1 / math.sqrt(conv.weight[0].numel())
                nn.init.uniform_(conv.bias, -bound, bound, generator=gen)
        nn.init.zeros_(last.weight)  # start as the identity: training only ever has to learn the perturbation
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.residual(x)).clamp(0, 1)


def framing_window(target: Target, reach: int) -> tuple[int, int, int, int]:
    """The canvas box (top, bottom, left, right) that ``target``'s crop reads, widened by ``reach`` pixels."""
    framing = target.framing
    m = framing.crop_to_canvas()
    corners = torch.tensor([[0.0, 0.0, 1.0], [framing.size, 0.0, 1.0], [0.0, framing.size, 1.0],
                            [framing.size, framing.size, 1.0]], dtype=torch.float64)
    xy = corners @ torch.as_tensor(m, dtype=torch.float64).T
    lo = (xy.min(0).values.floor() - reach).clamp(0, CANVAS_SIZE).long().tolist()
    hi = (xy.max(0).values.ceil() + reach).clamp(0, CANVAS_SIZE).long().tolist()
    return lo[1], hi[1], lo[0], hi[0]


def purify(denoiser: Denoiser, canvases: torch.Tensor, window: tuple[int, int, int, int]) -> torch.Tensor:
    """The canvases with the window the recogniser reads purified (differentiable)."""
    top, bottom, left, right = window
    out = canvases.clone()
    out[..., top:bottom, left:right] = denoiser(canvases[..., top:bottom, left:right])
    return out


def purification_loss(target: Target, denoiser: Denoiser, window: tuple[int, int, int, int],
                      inputs: torch.Tensor, clean: torch.Tensor, anchors: torch.Tensor,
                      pixel_weight: float) -> torch.Tensor:
    """1 - cos(f(purify(x)), f(clean)) + pixel_weight x L1(purify(x), clean) on the window."""
    out = purify(denoiser, inputs, window)
    top, bottom, left, right = window
    feature = 1 - F.cosine_similarity(target.embed(out), anchors).mean()
    pixel = (out - clean)[..., top:bottom, left:right].abs().mean()
    return feature + pixel_weight * pixel


@dataclass
class PurifierTraining:
    """A purifier about to be trained for ``target``: the network, its optimiser, the window it works on and the
    clean photos' embeddings it is trained toward."""

    net: Denoiser
    optimiser: torch.optim.Optimizer
    window: tuple[int, int, int, int]
    anchors: torch.Tensor
    pixel_weight: float

    @classmethod
    def start(cls, target: Target, clean: torch.Tensor, config: PurificationConfig,
              gen: torch.Generator) -> PurifierTraining:
        net = Denoiser(config.width, config.layers, gen).to(clean.device)
        with torch.no_grad():
            anchors = target.embed(clean)
        return cls(net, torch.optim.Adam(net.parameters(), lr=config.lr), framing_window(target, config.layers),
                   anchors, config.pixel_weight)

    def step(self, target: Target, inputs: torch.Tensor, clean: torch.Tensor, anchors: torch.Tensor) -> float:
        loss = purification_loss(target, self.net, self.window, inputs, clean, anchors, self.pixel_weight)
        self.optimiser.zero_grad()
        loss.backward()
        self.optimiser.step()
        return float(loss.detach())


def train_purifier(target: Target, protected: torch.Tensor, clean: torch.Tensor, config: PurificationConfig,
                   log: Callable[[int, float], None] | None = None) -> tuple[Denoiser, float]:
    """A purifier trained for ``target`` on (protected, clean) canvas pairs; returns it (in eval mode) and its mean
    loss over the last 25 steps. ``log(step, loss)`` follows the training."""
    cfg = config
    gen = torch.Generator().manual_seed(cfg.seed)
    training = PurifierTraining.start(target, clean, cfg, gen)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(training.optimiser, cfg.steps)
    recent: list[float] = []
    training.net.train()
    for step in range(cfg.steps):
        idx = torch.randint(0, len(clean), (cfg.batch,), generator=gen).to(clean.device)
        anchors = training.anchors[idx]
        recent = [*recent[-24:], training.step(target, torch.cat([protected[idx], clean[idx]]),
                                               torch.cat([clean[idx], clean[idx]]), torch.cat([anchors, anchors]))]
        sched.step()
        if log is not None:
            log(step, recent[-1])
    return training.net.eval(), sum(recent) / len(recent)


class PurifiedTarget(Target):
    """A recogniser that purifies every canvas before its embedding (no gradients)."""

    differentiable = False

    def __init__(self, target: Target, denoiser: Denoiser, window: tuple[int, int, int, int], batch: int = 16):
        self.inner, self.denoiser, self.window, self.batch = target, denoiser.eval(), window, batch
        self.config, self._loaded = target.config, True
        self.name, self.framing, self.embedding_dim = target.name, target.framing, target.embedding_dim

    def purify(self, canvases: torch.Tensor) -> torch.Tensor:
        device = next(self.denoiser.parameters()).device
        with torch.no_grad():
            return torch.cat([purify(self.denoiser, canvases[i : i + self.batch].to(device), self.window)
                              .to(canvases.device) for i in range(0, len(canvases), self.batch)])

    def embed(self, canvases: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.inner.embed(self.purify(canvases))

    def thresholds(self, data: str | None) -> dict[str, float]:
        return self.inner.thresholds(data)


@ADVERSARIES.register("purification")
class Purification(Adversary):
    kind = "adaptation"
    Config = PurificationConfig
    trains_per_target = True

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
        require_differentiable(target, "purification (its feature loss)")
        t0 = time.perf_counter()
        denoiser, facts = self.denoiser(context, target)
        # adapt_s: what building the adaptation cost (protecting the owner's photos + training), also when it
        # now comes from the cache; wall_s: this call.
        self._info = {**facts, "adapt_s": facts["protect_public_s"] + facts["train_s"],
                      "wall_s": time.perf_counter() - t0}
        return PurifiedTarget(target, denoiser, framing_window(target, self.config.layers))

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def training_step(self, target: Target, photos: torch.Tensor) -> tuple[Any, int] | None:
        if not trainable(target):
            return None  # its cells fail with the reason; nothing is trained
        cfg = self.config
        batch = photos[torch.arange(2 * cfg.batch) % len(photos)]
        training = PurifierTraining.start(target, batch, cfg, torch.Generator().manual_seed(cfg.seed))

        def step() -> None:
            training.step(target, batch, batch, training.anchors)

        return step, cfg.steps

    def denoiser(self, context: AdversaryContext, target: Target) -> tuple[Denoiser, dict[str, Any]]:
        """The purifier trained for ``target`` against the method under test, from the cache or trained now."""
        cfg = self.config
        pairs = protected_pairs(context, cfg.identities, cfg.photos, cfg.seed)
        device = torch.device(context.device)
        label = f"purifier for {target.name}"
        key = cache_key("purifier", context.code_version(self), pairs.key, target.name,
                        [w.sha256 for w in type(target).weights], dataclasses.asdict(cfg))
        path = cache_path(context, "purification", key)
        facts = {"protect_public_s": pairs.seconds, "pairs": len(pairs.protected), "identities": pairs.identities,
                 "cache_key": key}
        if path.exists():
            saved = torch.load(path, weights_only=True)
            net = Denoiser(cfg.width, cfg.layers).to(device)
            net.load_state_dict(saved["state"])
            return net.eval(), {**facts, "train_s": float(saved["train_s"]), "final_loss": float(saved["final_loss"]),
                                "cached": True}
        t0 = time.perf_counter()
        step = context.steps(label, cfg.steps)
        net, final = train_purifier(target, pairs.protected.to(device), pairs.clean.to(device), cfg,
                                    lambda *_: step())
        train_s = time.perf_counter() - t0
        save_atomic({"state": {k: v.cpu() for k, v in net.state_dict().items()}, "train_s": train_s,
                     "final_loss": final}, path)
        return net, {**facts, "train_s": train_s, "final_loss": final, "cached": False}
