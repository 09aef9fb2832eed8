"""Where the trade-off chart's labels go: beside their mark, over no other label or mark, with a leader line when
moved away (``place_labels``), in pixels of the drawn figure."""

from __future__ import annotations

import math
from collections.abc import Iterator

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


def _overlaps(a: Box, b: Box, pad: float = 2.0) -> bool:
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


def _crosses(p: tuple[float, float], q: tuple[float, float], box: Box) -> bool:
    """Whether the segment p-q passes through ``box`` (sampled: boxes are far larger than the step)."""
    steps = max(int(math.dist(p, q) / 3), 1)
    return any(box[0] <= p[0] + (q[0] - p[0]) * i / steps <= box[2] and box[1] <= p[1] + (q[1] - p[1]) * i / steps
               <= box[3] for i in range(1, steps))


def _candidates(x: float, y: float, w: float, h: float) -> Iterator[tuple[Box, tuple[float, float], str, str]]:
    """Label boxes around (x, y), nearest first: (box, where the leader line ends, ha, va)."""
    for r in (9, 16, 26, 38, 52, 70, 92, 118, 150, 190, 240):
        for deg in (0, 180, 20, -20, 160, -160, 40, -40, 140, -140, 60, -60, 120, -120, 75, -75, 105, -105, 90, -90):
            ax_, ay = x + r * math.cos(math.radians(deg)), y + r * math.sin(math.radians(deg))
            c = math.cos(math.radians(deg))
            if c > 0.3:
                box, ha = (ax_, ay - h / 2, ax_ + w, ay + h / 2), "left"
            elif c < -0.3:
                box, ha = (ax_ - w, ay - h / 2, ax_, ay + h / 2), "right"
            else:
                box, ha = (ax_ - w / 2, ay, ax_ + w / 2, ay + h) if deg > 0 else (ax_ - w / 2, ay - h, ax_ + w / 2, ay), \
                    "center"
            yield box, (ax_, ay), ha, "center" if ha != "center" else ("bottom" if deg > 0 else "top")


Spot = tuple[Box, tuple[float, float], str, str]  # label box, end of its leader line, ha, va


def place_labels(points: list[tuple[float, float]], sizes: list[tuple[float, float]], area: Box,
                 marks: list[tuple[float, float]], obstacles: list[Box], tries: int = 6) -> list[Spot | None]:
    """A spot for each label (``_place`` in the order given); labels left without one go first in the next
    try, up to ``tries`` times. None where no try found room."""
    order = list(range(len(points)))
    best: list[Spot | None] = []
    for _ in range(tries):
        spots = _place([points[i] for i in order], [sizes[i] for i in order], area, marks, obstacles)
        placed = dict(zip(order, spots, strict=True))
        if not best or sum(s is None for s in placed.values()) < sum(s is None for s in best):
            best = [placed[i] for i in range(len(points))]
        failed = [i for i in order if placed[i] is None]
        if not failed:
            break
        order = failed + [i for i in order if placed[i] is not None]
    return best


def _place(points: list[tuple[float, float]], sizes: list[tuple[float, float]], area: Box,
           marks: list[tuple[float, float]], obstacles: list[Box]) -> list[Spot | None]:
    """Greedy placement (in the order given): the nearest spot around each point whose box stays in ``area``
    and clears every mark, obstacle, earlier label and earlier leader line, and whose leader line crosses no
    label (nor, where any spot allows it, another mark); None where nothing fits."""
    mark_boxes = [(x - 7, y - 7, x + 7, y + 7) for x, y in marks]  # a marker and its white edge, with air
    placed: list[Box] = []
    leaders: list[tuple[tuple[float, float], tuple[float, float]]] = []
    out: list[Spot | None] = []

    def fits(x: float, y: float, box: Box, end: tuple[float, float], avoid_marks: bool) -> bool:
        inside = area[0] <= box[0] and box[2] <= area[2] and area[1] <= box[1] and box[3] <= area[3]
        if not inside or any(_overlaps(box, o) for o in [*mark_boxes, *placed, *obstacles]):
            return False
        if any(_crosses(p, q, box) for p, q in leaders):
            return False
        others = [m for m in mark_boxes if not (m[0] < x < m[2] and m[1] < y < m[3])] if avoid_marks else []
        return math.dist((x, y), end) <= 12 or not any(_crosses((x, y), end, o) for o in placed + others)

    for (x, y), (w, h) in zip(points, sizes, strict=True):
        choice = next((c for avoid_marks in (True, False) for c in _candidates(x, y, w, h)
                       if fits(x, y, c[0], c[1], avoid_marks)), None)
        if choice is not None:
            placed.append(choice[0])
            if math.dist((x, y), choice[1]) > 12:
                leaders.append(((x, y), choice[1]))
        out.append(choice)
    return out

