"""What a run computed, counted, so that work done twice shows: ``recomputations`` must stay 0.

Two kinds of work are counted, by item (a photo's content digest) and by the model that did it:
- ``aligned``: a photo detected and aligned (a cache hit is a load, not an alignment; ``model`` = the alignment
  settings' key);
- ``clean-embedded``: a clean photo embedded by a recogniser for the gallery or the clean probes (``model`` = the
  target, or the target as an adversary adapted it for a method, since that is another model).

An item done again by the same model is a recomputation. The runner's aligner and task bodies note into one
:class:`WorkLog`; an executor whose tasks run elsewhere (``bench.run.ray_executor``) returns each task's notes with
its output and merges them in. The run store keeps the summary as meta ``work``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

KINDS = ("aligned", "clean-embedded")


class WorkLog:
    def __init__(self) -> None:
        self.counts: dict[str, dict[str, Counter]] = {}

    def note(self, kind: str, model: str, items: Iterable[str]) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown kind of work {kind!r}; counted kinds: {', '.join(KINDS)}")
        self.counts.setdefault(kind, {}).setdefault(model, Counter()).update(items)

    def as_dict(self) -> dict[str, dict[str, dict[str, int]]]:
        """Plain data (what a remote task returns): kind -> model -> item -> times."""
        return {kind: {model: dict(c) for model, c in models.items()} for kind, models in self.counts.items()}

    def merge(self, other: dict[str, dict[str, dict[str, int]]]) -> None:
        for kind, models in other.items():
            for model, items in models.items():
                self.counts.setdefault(kind, {}).setdefault(model, Counter()).update(items)

    def clear(self) -> None:
        self.counts.clear()

    def summary(self) -> dict[str, Any]:
        """Per kind: items done, times done, and ``again`` (times beyond the first); ``recomputations`` in all."""
        out: dict[str, Any] = {}
        for kind in KINDS:
            models = self.counts.get(kind, {})
            items = sum(len(c) for c in models.values())
            times = sum(sum(c.values()) for c in models.values())
            out[kind] = {"items": items, "times": times, "again": times - items}
        out["recomputations"] = sum(out[k]["again"] for k in KINDS)
        return out


__all__ = ["KINDS", "WorkLog"]
