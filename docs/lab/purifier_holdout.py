"""Does the feature-space purifier generalise to people it was not trained on?

Reads the owner's protected/clean photos that a training adversary cached in a run folder
(``<run>/cache/adversary-public/<key>.pt``, written by ``purification`` or ``robust-finetune``), trains the purifier
at the registered defaults on the first ``--train`` people and reports, on the others, the cosine between each
protected photo's embedding and its clean photo's, before and after purification, their rank-1 match among all the
owner's people, and how far clean photos move.

    python docs/lab/purifier_holdout.py runs/adaptive/cache/adversary-public/<key>.pt --target sface
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import bench
from attacks.purification import Denoiser, PurificationConfig, framing_window, purify, train_purifier
from bench.api import from_uint8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", help="a cached adversary-public .pt file of a run folder")
    parser.add_argument("--target", default="sface")
    parser.add_argument("--train", type=int, default=8, help="people trained on; the rest are held out")
    args = parser.parse_args()
    saved = torch.load(args.pairs, weights_only=True)  # made by cloakbench's own cache writer
    protected, clean, owner = from_uint8(saved["protected"]), from_uint8(saved["clean"]), saved["owner"]
    people = int(owner.max()) + 1
    target = bench.load_target(args.target)
    cfg = PurificationConfig()
    window = framing_window(target, cfg.layers)
    train, held = owner < args.train, owner >= args.train
    with torch.no_grad():
        anchors = target.embed(clean)
        centres = F.normalize(torch.stack([anchors[owner == k].mean(0) for k in range(people)]), dim=1)

    def report(tag: str, net: Denoiser | None) -> None:
        with torch.no_grad():
            shown = purify(net, protected[held], window) if net else protected[held]
            kept = purify(net, clean[held], window) if net else clean[held]
            f_shown, f_kept = target.embed(shown), target.embed(kept)
            top1 = ((F.normalize(f_shown, dim=1) @ centres.T).argmax(1) == owner[held]).float().mean()
        print(f"{tag}: cos(protected, clean) {F.cosine_similarity(f_shown, anchors[held]).mean():.3f}, "
              f"rank-1 of protected among {people} people {100 * top1:.0f} %, "
              f"cos(clean after, clean) {F.cosine_similarity(f_kept, anchors[held]).mean():.3f}", flush=True)

    report("before", None)
    t0 = time.perf_counter()

    def log(step: int, loss: float) -> None:
        if step % 25 == 0 or step == cfg.steps - 1:
            print(f"step {step + 1}/{cfg.steps} loss {loss:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)

    net, _ = train_purifier(target, protected[train], clean[train], cfg, log)
    report("after", net)

if __name__ == "__main__":
    main()
