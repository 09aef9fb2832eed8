"""A fitted personalized mask as a file a user keeps and reuses: ``bench protect --mask FILE``.

An ``.npz`` (read back with ``allow_pickle=False``: nothing in it can run code) holding the mask (3 x H x W, on the
aligned canvas, 0..1 scale), the user's face templates per surrogate (to tell the user's face from others in a new
photo) and a JSON header: method, config, budget, surrogates, canvas geometry, cloakbench version. Whoever holds
the file holds the key: subtracting the mask restores the photo (Chameleon's authorization).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import bench
from bench.data.canvas import CANVAS_SIZE, CANVAS_TEMPLATE
from bench.run.budget import MEASURES, SLACK, BudgetExceeded, check_budget

FORMAT = "cloakbench-mask/1"


@dataclass
class SavedMask:
    mask: torch.Tensor  # 1 x 3 x H x W
    header: dict[str, Any]
    templates: dict[str, torch.Tensor]  # surrogate name -> D unit vector of the user's face


def save_mask(path: str | Path, mask: torch.Tensor, header: dict[str, Any],
              templates: dict[str, torch.Tensor]) -> Path:
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    full = {"format": FORMAT, "cloakbench": bench.__version__, "canvas_size": CANVAS_SIZE,
            "canvas_template": CANVAS_TEMPLATE.round(4).tolist(), **header}
    arrays = {"mask": mask.detach().float().cpu().reshape(3, *mask.shape[-2:]).numpy(),
              "header": np.array(json.dumps(full, sort_keys=True))}
    arrays.update({f"template/{name}": t.detach().float().cpu().numpy() for name, t in templates.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def load_mask(path: str | Path) -> SavedMask:
    """Read and check a mask file; a file that is not one, or whose mask is not finite, not 3 x canvas x canvas or
    over the budget its header declares, raises :class:`ValueError` with one line saying which."""
    path = Path(path)
    make = "make one with `bench protect --method NAME --fit DIR ... --save-mask FILE`"
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # an .npz is a zip archive
        raise ValueError(f"{path} is not a cloakbench mask file (not an .npz archive); {make}")
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            mask = np.asarray(z["mask"])
            templates = {k.split("/", 1)[1]: torch.from_numpy(z[k]) for k in z.files if k.startswith("template/")}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a cloakbench mask file ({exc}); {make}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown mask format {header.get('format') if isinstance(header, dict) else None!r}"
                         f" (expected {FORMAT})")
    if header.get("canvas_size") != CANVAS_SIZE:
        raise ValueError(f"{path}: mask made for a {header.get('canvas_size')} px canvas; this cloakbench uses "
                         f"{CANVAS_SIZE} px")
    expected = (3, CANVAS_SIZE, CANVAS_SIZE)
    if mask.shape != expected or not np.issubdtype(mask.dtype, np.floating):
        raise ValueError(f"{path}: the mask is {mask.dtype} of shape {'x'.join(map(str, mask.shape)) or 'scalar'}, "
                         f"not float {'x'.join(map(str, expected))} (RGB on the {CANVAS_SIZE} px canvas); {make}")
    if not np.isfinite(mask).all():
        raise ValueError(f"{path}: the mask holds {int((~np.isfinite(mask)).sum())} values that are NaN or "
                         f"infinite; {make}")
    saved = SavedMask(torch.from_numpy(mask.astype(np.float32)).unsqueeze(0), header, templates)
    check_mask_budget(saved, str(path))
    return saved


def declared_bounds(header: dict[str, Any]) -> dict[str, float]:
    """The bounds a mask file's header declares that the harness measures (``bench.run.budget.MEASURES``)."""
    budget = header.get("budget")
    if not isinstance(budget, dict):
        return {}
    return {k: float(v) for k, v in budget.items() if k in MEASURES and isinstance(v, int | float)}


def check_mask_budget(saved: SavedMask, what: str) -> None:
    """The run's budget check (``bench.run.budget.check_budget``) on the mask as the change it makes to a canvas. For
    linf, l2 and area the mask bounds every photo's change (clipping to 0..1 only shrinks it); a DSSIM bound depends
    on the photo and is checked on each one as it is protected (``bench.run.protect_photos.PhotoProtection``)."""
    bounds = declared_bounds(saved.header)
    if not bounds:
        raise ValueError(f"{what}: the header declares no budget ({', '.join(MEASURES)}) to check the mask against; "
                         "a mask without a checked budget is refused")
    on_mask = {k: v for k, v in bounds.items() if k != "dssim"}
    zeros = torch.zeros_like(saved.mask)
    try:
        check_budget(str(saved.header.get("method", "the mask")), on_mask, saved.mask, zeros, "mask")
    except BudgetExceeded:
        kind, value = next((k, float(MEASURES[k](saved.mask, zeros)[0])) for k in on_mask
                           if float(MEASURES[k](saved.mask, zeros)[0]) > on_mask[k] + SLACK[k])
        raise ValueError(f"{what}: the mask's {kind} is {value:.6f}, over the {on_mask[kind]:.6f} its header declares "
                         "(a damaged or edited file); refused") from None
