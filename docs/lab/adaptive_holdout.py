"""Does a training adversary generalise to people it was not trained on?

Reads the owner's protected/clean photos that a training adversary cached in a run folder
(``<run>/cache/adversary-public/<key>.pt``, written by ``purification`` or ``robust-finetune``), trains the adversary
(its registered defaults, or ``--set key=value``) on the first ``--train`` people, and reports on the others, before
and after: the cosine between each protected photo's embedding and its clean photo's under the original
recogniser, the protected photos' rank-1 match among all the owner's people (their clean photos re-embedded by the
adapted recogniser, as the runner does), the clean photos' own rank-1 (leave-one-out: does the adapted recogniser
still tell the people apart?) and how far clean photos move.

    python docs/lab/adaptive_holdout.py runs/adaptive/cache/adversary-public/<key>.pt --adversary purification
    python docs/lab/adaptive_holdout.py <key>.pt --adversary robust-finetune --set lr=1e-5
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import bench
from attacks.purification import PurificationConfig, framing_window, purify, train_purifier
from attacks.robust_finetune import RobustFinetuneConfig, finetune
from bench.api import batch_steps, from_uint8
from bench.commands._settings import parse_value  # as `bench run --set` reads a value

CONFIGS = {"purification": PurificationConfig, "robust-finetune": RobustFinetuneConfig}


def adapted(adversary: str, target, protected: torch.Tensor, clean: torch.Tensor, cfg,
            log: Callable[[int, float], None]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The adapted recogniser's embedding, trained on (protected, clean)."""
    if adversary == "purification":
        net, _ = train_purifier(target, protected, clean, cfg, log)
        window = framing_window(target, cfg.layers)
        return lambda x: target.embed(purify(net, x, window))
    tuned = copy.deepcopy(target)
    finetune(tuned, target, protected, clean, cfg, log)
    tuned.network.eval()
    return tuned.embed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", help="a cached adversary-public .pt file of a run folder")
    parser.add_argument("--adversary", choices=sorted(CONFIGS), default="purification")
    parser.add_argument("--target", default="sface")
    parser.add_argument("--train", type=int, default=8, help="people trained on; the rest are held out")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config value")
    args = parser.parse_args()
    cfg = CONFIGS[args.adversary](**{k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)})
    print(f"{args.adversary} on {args.target}: {dataclasses.asdict(cfg)}")
    saved = torch.load(args.pairs, weights_only=True)  # made by cloakbench's own cache writer
    protected, clean, owner = from_uint8(saved["protected"]), from_uint8(saved["clean"]), saved["owner"]
    people = int(owner.max()) + 1
    target = bench.load_target(args.target)
    train, held = owner < args.train, owner >= args.train
    with torch.no_grad():
        anchors = target.embed(clean)

    def report(tag: str, embed: Callable[[torch.Tensor], torch.Tensor]) -> None:
        with torch.no_grad():
            f_clean = F.normalize(embed(clean), dim=1)
            f_shown = F.normalize(embed(protected[held]), dim=1)
        sums = torch.zeros(people, f_clean.shape[1]).index_add_(0, owner, f_clean)
        top1 = ((f_shown @ F.normalize(sums, dim=1).T).argmax(1) == owner[held]).float().mean()
        own = held.nonzero().flatten()
        clean_hits = sum(int((f_clean[i] @ F.normalize(sums - F.one_hot(owner[i], people).float()[:, None] * f_clean[i],
                                                        dim=1).T).argmax() == owner[i]) for i in own)
        print(f"{tag}: cos(protected, clean) {F.cosine_similarity(f_shown, anchors[held]).mean():.3f}, "
              f"rank-1 of protected among {people} people {100 * top1:.0f} %, "
              f"clean rank-1 (leave-one-out) {100 * clean_hits / len(own):.0f} %, "
              f"cos(clean after, clean) {F.cosine_similarity(f_clean[held], anchors[held]).mean():.3f}", flush=True)

    report("before", target.embed)
    total = cfg.steps if args.adversary == "purification" else batch_steps(int(train.sum()), cfg.batch, cfg.epochs)
    t0 = time.perf_counter()

    def log(step: int, loss: float) -> None:
        if step % 25 == 0 or step == total - 1:
            print(f"step {step + 1}/{total} loss {loss:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)

    report("after", adapted(args.adversary, target, protected[train], clean[train], cfg, log))


if __name__ == "__main__":
    main()
