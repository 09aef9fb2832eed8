"""Dynamic gallery: a tracker that enrols what it recognises and searches again.

DynTracker (Fan et al., "DivTrackee versus DynTracker: Promoting Diversity in Anti-Facial Recognition against
Dynamic FR Strategy", 2025, arXiv:2501.06533) replaces the fixed gallery of the usual evaluation with one that
grows: every posted photo the recogniser identifies is added to the identity it was identified as, and the
remaining photos are searched again. A protection that adds the same pattern to every photo of a user (a universal
mask) is the weak case: once one protected photo is recognised, it pulls in the others that share its mask. The
paper reports that this simple strategy makes the protections it tried ineffective.

Rounds, on the target's embeddings of the posted photos (the user's protected queries in the probe scenario, the
clean queries against the enrolled protected photos in the gallery scenario) and the run's gallery templates (one
per identity: the normalised sum of its embeddings, ``bench.measures.psr.identity_templates``):

1. each posted photo not yet enrolled is matched to the identity whose template it is most similar to;
2. if that similarity reaches the target's threshold calibrated on LFW at false-accept rate ``far`` (1e-3, the
   harness's strictest calibrated threshold: the tracker enrols only what it is confident of), the photo joins
   that identity: its embedding is added to the identity's sum. A target with no LFW calibration under the run's
   data root gets the threshold a tracker can set on its own gallery (``bench.measures.psr.gallery_thresholds``: the
   quantile of its impostor scores); the evaluation's info records which;
3. repeat until a round enrols nothing or ``rounds`` rounds have run.

Enrolled photos stay enrolled (DynTracker only adds to the gallery). Each posted photo is then scored like a
probe against the grown gallery with its own contribution left out (``bench.measures.psr.enrolled_outcomes``), so a
photo never finds itself; with nothing enrolled the scores are exactly those of the fixed gallery (``none``).

Defaults (ours; the paper iterates a few rounds and does not fix a count): ``rounds`` 10, a bound the runs never
reached (the gallery stops growing sooner); ``far`` "far1e-3". Kind ``estimation``: like mask estimation it sees
the posted photos together, and it counts towards the worst adaptive column. It works on crop-space runs scored
with one template per identity (``protocol=templates``); other runs fail its cells with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attacks.base import Adversary, check_range
from bench.api import ADVERSARIES


@dataclass
class DynamicGalleryConfig:
    rounds: int = 10  # a bound: the rounds stop as soon as one enrols nothing
    far: str = "far1e-3"  # which calibrated threshold admits a photo to the gallery

    def __post_init__(self) -> None:
        check_range("dynamic-gallery rounds", self.rounds, 1, 1_000)
        if not (isinstance(self.far, str) and self.far.startswith("far")):
            raise ValueError(f"dynamic-gallery far must name a calibrated threshold such as 'far1e-3', got {self.far!r}")


@ADVERSARIES.register("dynamic-gallery")
class DynamicGallery(Adversary):
    kind = "estimation"
    Config = DynamicGalleryConfig
    grows_gallery = True

    def enrol(self, sums: torch.Tensor, posts: torch.Tensor, thresholds: dict[str, float]) -> tuple[torch.Tensor, int]:
        """Which identity (row of ``sums``: I x D, each identity's summed unit embeddings) each posted photo
        (``posts``: N x D, unit norm) ends up enrolled in, -1 where none (N,); and the rounds that ran (the last
        one enrolled nothing unless the bound stopped them)."""
        if self.config.far not in thresholds:
            raise ValueError(f"dynamic-gallery needs the target's threshold at {self.config.far} (it has "
                             f"{', '.join(sorted(thresholds)) or 'none'}): calibrate the target (bench calibrate) "
                             "or set dynamic-gallery.far to one it has")
        threshold = thresholds[self.config.far]
        enrolled = torch.full((len(posts),), -1, dtype=torch.long, device=posts.device)
        grown = sums.clone()
        rounds = 0
        while rounds < self.config.rounds:
            rounds += 1
            best, identity = (posts @ F.normalize(grown, dim=1).T).max(1)
            new = (enrolled < 0) & (best >= threshold)
            if not new.any():
                break
            enrolled[new] = identity[new]
            grown.index_add_(0, identity[new], posts[new])
        return enrolled, rounds
