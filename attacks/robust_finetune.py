"""Robust fine-tuning (FaceCure: Radiya-Dixit, Hong, Carlini and Tramer, "Data poisoning won't save you from
facial recognition", ICLR 2022; ftramer/FaceCure ``train_robust_features.py``).

The recogniser's owner protects photos of people it already has (an identity bank of the run, never the
evaluated users) with the same public tool (``context.method`` and its surrogates) and fine-tunes its feature
extractor so that a protected photo embeds where the clean photo of the same person does. The evaluated users'
protected photos are then judged by the tuned model against a gallery it re-embeds (the runner re-embeds when
``adapt`` returns another target).

Loss, per (protected x', clean x) pair of the owner's people, with f the tuned model and f0 the original:
  (1 - cos(f(x'), f0(x))) + (1 - cos(f(x), f0(x)))
the first term is the robustness FaceCure trains for (protected and clean photos of one person embed together),
the second keeps clean photos where the original model put them, so the tuned model still recognises everyone
else (FaceCure keeps a classification head over its public identities for the same reason). As in FaceCure, a
random horizontal flip augments every pair and training runs ``epochs`` epochs (10) over the pairs; batch-norm
statistics stay frozen (the pairs are few).

Where this differs from FaceCure: FaceCure fine-tunes end to end with a softmax head over its FaceScrub identities
(Adadelta, 10 epochs of 500 steps of 32 photos, about 160,000 photos seen); here the owner has 48 pairs, and 10
epochs of them are 60 steps of 8. At so few steps the learning rate decides whether the model moves at all: Adam at
``lr`` 1e-4 (not the 1e-5 of a usual fine-tuning). Measured with ``docs/lab/adaptive_holdout.py`` on 48
LowKey-protected photos of the owner's 12 people, SFace, trained on 8 people and judged on the other 4: the
held-out protected photos' rank-1 among the 12 people was 0 % before, 0 % after training at lr 1e-5, 44 % at 3e-5,
88 % at 1e-4, while the clean photos' leave-one-out rank-1 stayed 100 % at each (docs/adversaries.md).

Needs a differentiable target (its ``network`` is fine-tuned on a copy; the original is untouched); a black box
fails with a clear reason. The tuned weights are cached in ``context.cache_dir`` under a key of the method, its
config, its surrogates, the owner's photos, the target and this config: built once, reused by every later run.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

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
from bench.api import ADVERSARIES, AdversaryContext, Need, Target, batch_steps, seeded


@dataclass
class RobustFinetuneConfig:
    identities: int = 12  # the owner's people protected for training
    photos: int = 4  # photos per person
    epochs: int = 10  # FaceCure's
    batch: int = 8
    lr: float = 1e-4  # see the module docstring: 1e-5 left LowKey's held-out photos unrecognised
    flip: bool = True  # FaceCure augments with horizontal flips
    seed: int = 0

    def __post_init__(self) -> None:
        check_range("robust fine-tuning identities", self.identities, 2, 10_000)
        check_range("robust fine-tuning photos", self.photos, 2, 1_000)
        check_range("robust fine-tuning epochs", self.epochs, 1, 1_000)
        check_range("robust fine-tuning batch", self.batch, 1, 1_024)
        check_range("robust fine-tuning lr", self.lr, 0.0, 1.0, open_low=True)


def pair_loss(model: Target, protected: torch.Tensor, clean: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    both = model.embed(torch.cat([protected, clean]))
    f_protected, f_clean = both[: len(clean)], both[len(clean) :]
    return (2 - F.cosine_similarity(f_protected, anchor).mean() - F.cosine_similarity(f_clean, anchor).mean())


@ADVERSARIES.register("robust-finetune")
class RobustFinetune(Adversary):
    kind = "adaptation"
    Config = RobustFinetuneConfig
    trains_per_target = True

    def __init__(self, config: RobustFinetuneConfig | None = None):
        super().__init__(config)
        self._info: dict[str, Any] = {}

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def needs(self) -> list[Need]:
        return [owner_people(self.config.identities, self.config.photos)]

    def adapt(self, target: Target, context: AdversaryContext | None = None) -> Target:
        context = require_context(context, "robust fine-tuning")
        self._info = {}
        if context.method is None:
            return target
        require_differentiable(target, "robust fine-tuning")
        t0 = time.perf_counter()
        cfg = self.config
        pairs = protected_pairs(context, cfg.identities, cfg.photos, cfg.seed)
        key = cache_key("robust-finetune", context.code_version(self), pairs.key, target.name,
                        [w.sha256 for w in type(target).weights], dataclasses.asdict(cfg))
        path = cache_path(context, "robust-finetune", key)
        tuned = copy.deepcopy(target)
        facts = {"protect_public_s": pairs.seconds, "pairs": len(pairs.protected), "identities": pairs.identities,
                 "cache_key": key}
        if path.exists():
            saved = torch.load(path, weights_only=True)
            tuned.network.load_state_dict(saved["state"])
            facts.update(train_s=float(saved["train_s"]), final_loss=float(saved["final_loss"]), cached=True)
        else:
            device = torch.device(context.device)
            step = context.steps(f"robust fine-tuning of {target.name}",
                                 batch_steps(len(pairs.clean), cfg.batch, cfg.epochs))
            t_train = time.perf_counter()
            with seeded(cfg.seed, context.device):  # scoped: what draws from torch's global RNG is repeatable
                final = finetune(tuned, target, pairs.protected.to(device), pairs.clean.to(device), cfg,
                                 lambda *_: step())
            train_s = time.perf_counter() - t_train
            save_atomic({"state": {k: v.cpu() for k, v in tuned.network.state_dict().items()}, "train_s": train_s,
                         "final_loss": final}, path)
            facts.update(train_s=train_s, final_loss=final, cached=False)
        for p in tuned.network.parameters():
            p.requires_grad_(False)
        tuned.network.eval()
        # adapt_s: what building the tuned model cost (protecting the owner's photos + fine-tuning), also when it
        # now comes from the cache; wall_s: this call.
        self._info = {**facts, "adapt_s": facts["protect_public_s"] + facts["train_s"],
                      "wall_s": time.perf_counter() - t0}
        return tuned

    def training_step(self, target: Target, photos: torch.Tensor) -> tuple[Any, int] | None:
        if not trainable(target):
            return None  # its cells fail with the reason; nothing is trained
        cfg = self.config
        tuned = copy.deepcopy(target)
        opt = start_tuning(tuned, cfg)
        batch = photos[torch.arange(cfg.batch) % len(photos)]
        with torch.no_grad():
            anchor = target.embed(batch)

        def step() -> None:
            loss = pair_loss(tuned, batch, batch, anchor)
            opt.zero_grad()
            loss.backward()
            opt.step()

        # the anchors (one forward pass per pair, two with flips) are a small part next to the steps: left out
        return step, batch_steps(cfg.identities * cfg.photos, cfg.batch, cfg.epochs)


def start_tuning(tuned: Target, config: RobustFinetuneConfig) -> torch.optim.Optimizer:
    """Make ``tuned``'s network trainable (batch-norm statistics frozen, no dropout: the pairs are few) and return
    its optimiser."""
    params = list(tuned.network.parameters())
    for p in params:
        p.requires_grad_(True)
    tuned.network.eval()
    return torch.optim.Adam(params, lr=config.lr)


def finetune(tuned: Target, original: Target, protected: torch.Tensor, clean: torch.Tensor,
             config: RobustFinetuneConfig, log: Callable[[int, float], None] | None = None) -> float:
    """Fine-tune ``tuned`` (a copy of ``original``) in place on (protected, clean) canvas pairs on their device;
    returns the mean loss of the last epoch. ``log(step, loss)`` follows the training."""
    cfg = config
    device = clean.device
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        anchors = original.embed(clean)
        flipped = original.embed(clean.flip(-1)) if cfg.flip else anchors
    opt = start_tuning(tuned, cfg)
    losses: list[float] = []
    for _ in range(cfg.epochs):
        order = torch.randperm(len(clean), generator=gen)
        for i in range(0, len(order), cfg.batch):
            idx = order[i : i + cfg.batch]
            x_p, x_c, anchor = protected[idx], clean[idx], anchors[idx]
            if cfg.flip:
                flip = torch.rand(len(idx), generator=gen) < 0.5
                x_p = torch.where(flip.view(-1, 1, 1, 1).to(device), x_p.flip(-1), x_p)
                x_c = torch.where(flip.view(-1, 1, 1, 1).to(device), x_c.flip(-1), x_c)
                anchor = torch.where(flip.view(-1, 1).to(device), flipped[idx], anchor)
            loss = pair_loss(tuned, x_p, x_c, anchor)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if log is not None:
                log(len(losses) - 1, losses[-1])
    last_epoch = losses[-max(1, batch_steps(len(clean), cfg.batch)) :]
    return sum(last_epoch) / len(last_epoch)
