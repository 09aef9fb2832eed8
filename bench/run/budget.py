"""The harness's check of a method's declared budget, on every protected photo.

A method declares its bounds with ``Method.budget()`` (``as_dict()``: kind -> bound). The harness measures each
kind per photo on the method's own output (before the harness rounds it to 8 bits for publication, which is not
the method's doing), against the clean canvas it was given:

- ``linf``: max |x' - x| over the whole canvas, on the 0..1 scale;
- ``dssim``: (1 - SSIM) / 2 on the canvas face box (``bench.data.canvas.face_region``), the crop DSSIM-bounded
  methods (Fawkes) perturb and bound;
- ``l2``: the L2 norm of x' - x over the whole canvas (L2-bounded attacks);
- ``area``: the share of canvas pixels changed at all (region patches, unbounded in colour inside the region).

A bound holds when the measured value is at most the bound plus ``SLACK`` (float32 arithmetic: the method and
the harness may batch the same computation differently). A declared kind the harness cannot measure is an error
too: a budget nobody checks is not a budget.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bench.data.canvas import face_region
from bench.measures.quality import dssim

SLACK = {"linf": 1e-5, "dssim": 1e-5, "l2": 1e-4, "area": 1e-6}


class BudgetExceeded(RuntimeError):
    """A protected photo exceeds a bound its method declared; the message names the method, photo and bound."""


def _linf(protected: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    return (protected - clean).abs().flatten(1).amax(1)


def _dssim(protected: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return dssim(face_region(protected), face_region(clean))


def _l2(protected: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    return (protected - clean).flatten(1).norm(dim=1)


def _area(protected: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    # a pixel counts as changed when any channel moved by more than float rounding
    return ((protected - clean).abs() > 1e-6).any(1).flatten(1).float().mean(1)


MEASURES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "linf": _linf, "dssim": _dssim, "l2": _l2, "area": _area,
}


def check_budget(method: str, declared: dict[str, float], protected: torch.Tensor, clean: torch.Tensor,
                 what: str = "photo") -> dict[str, float]:
    """Measure every declared bound on every photo (N x 3 x H x W in [0, 1]); returns the largest value per kind.

    Raises :class:`BudgetExceeded` on the first photo over a bound, :class:`ValueError` on a kind it cannot measure.
    """
    unknown = sorted(set(declared) - set(MEASURES))
    if unknown:
        raise ValueError(f"{method} declares budget {unknown}, which the harness cannot check; it checks "
                         f"{', '.join(MEASURES)}")
    worst: dict[str, float] = {}
    if len(protected) == 0:
        return worst
    for kind, bound in declared.items():
        values = MEASURES[kind](protected.detach(), clean)
        over = torch.nonzero(values > bound + SLACK[kind]).flatten()
        if len(over):
            i = int(over[0])
            raise BudgetExceeded(f"{method} exceeded its {kind} budget on {what} {i} (and {len(over) - 1} more): "
                                 f"{float(values[i]):.6f} > {bound:.6f}")
        worst[kind] = float(values.max())
    return worst


__all__ = ["check_budget", "BudgetExceeded", "SLACK", "MEASURES"]
