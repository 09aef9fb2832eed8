"""A fitted personalized mask as a file a user keeps and reuses: ``bench protect --mask FILE``.

An ``.npz`` (read back with ``allow_pickle=False``: nothing in it can run code) holding the mask (3 x H x W, on the
aligned canvas, 0..1 scale), the user's face templates per surrogate (to tell the user's face from others in a new
photo) and a JSON header: method, config, budget, surrogates, canvas geometry, cloakbench version. Whoever holds
the file holds the key: subtracting the mask restores the photo (Chameleon's authorization).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import bench
from bench.canvas import CANVAS_SIZE, CANVAS_TEMPLATE

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
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            mask = torch.from_numpy(z["mask"]).unsqueeze(0)
            templates = {k.split("/", 1)[1]: torch.from_numpy(z[k]) for k in z.files if k.startswith("template/")}
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path} is not a cloakbench mask file ({exc}); make one with "
                         "`bench protect --method NAME --fit DIR ... --save-mask FILE`") from exc
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown mask format {header.get('format')!r} (expected {FORMAT})")
    if header.get("canvas_size") != CANVAS_SIZE or tuple(mask.shape[-2:]) != (CANVAS_SIZE, CANVAS_SIZE):
        raise ValueError(f"{path}: mask made for a {header.get('canvas_size')} px canvas; this cloakbench uses "
                         f"{CANVAS_SIZE} px")
    return SavedMask(mask, header, templates)
