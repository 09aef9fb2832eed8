"""Checks made before any compute: ranges of config values, the device, the data root and the output folder, and
the JSON files a user names (a leaderboard, a baseline, a submitted entry).

Each failure is one line that names the bad value and what is allowed, so ``bench run`` can stop at once (exit 2)
instead of minutes later, and before anything is written: a refused run leaves no run folder behind.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class UsageError(ValueError):
    """A request that cannot run as given; the message (one line) names the value and what is allowed."""


@dataclass(frozen=True)
class Interval:
    """Allowed values of a number: ``low``/``high`` bounds (None: unbounded), open or closed, whole or real."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    whole: bool = False

    def admits(self, value: Any) -> bool:
        if not _is_number(value) or (self.whole and not isinstance(value, numbers.Integral)):
            return False
        if math.isnan(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def text(self, name: str) -> str:
        whole = " (a whole number)" if self.whole else ""
        if self.low is not None and self.high is not None:
            return (f"{self.low:g} {'<' if self.low_open else '<='} {name} "
                    f"{'<' if self.high_open else '<='} {self.high:g}{whole}")
        if self.low is not None:
            return f"{name} {'>' if self.low_open else '>='} {self.low:g}{whole}"
        if self.high is not None:
            return f"{name} {'<' if self.high_open else '<='} {self.high:g}{whole}"
        return f"{name} any number{whole}"


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def at_least(low: float, whole: bool = False) -> Interval:
    return Interval(low=low, whole=whole)


def positive(whole: bool = False) -> Interval:
    return Interval(low=0, low_open=True, whole=whole)


FRACTION = Interval(low=0, high=1, low_open=True)  # (0, 1]: a budget in [0, 1] pixel units, never 0
COUNT = Interval(low=1, whole=True)  # 1, 2, ...


def check_ranges(obj: Any, prefix: str = "", **allowed: Interval) -> None:
    """Raise :class:`UsageError` naming the first field of ``obj`` outside its allowed interval."""
    for name, interval in allowed.items():
        value = getattr(obj, name)
        if not interval.admits(value):
            what = "is not a number" if not _is_number(value) else "is out of range"
            raise UsageError(f"{prefix}{name}={value!r} {what}; allowed: {interval.text(name)}")


# Ceilings on every whole number in a method's or adversary's config, by what it counts (the field's name says
# which). No paper's setting comes near them; above them a typo (steps=100000000000) would run for years or fill
# the memory before anything said so. Any other whole number gets MAX_WHOLE, a seed any 32-bit value.
CEILINGS: tuple[tuple[str, str, int], ...] = (
    (r"seed", "a 32-bit seed", 2**32 - 1),
    (r"steps|iterations|epochs|restarts|warmup|rounds", "an iteration count", 100_000),
    (r"queries", "a query budget", 1_000_000),
    (r"batch|batch_size", "a batch size", 4_096),
    (r"kernel|kernel_size|size|patch|block|width|diameter|template|search", "a size in pixels or units", 1_024),
)
MAX_WHOLE = 1_000_000


def ceiling(field: str) -> tuple[str, int]:
    """What a whole-number config field counts and its largest allowed value, from the field's name."""
    for pattern, role, high in CEILINGS:
        if re.search(rf"(^|_)({pattern})$", field):
            return role, high
    return "a whole number", MAX_WHOLE


def check_config_ceilings(config: Any, where: str) -> None:
    """Every whole number of a dataclass config at most its ceiling (``ceiling``) and every real number finite;
    raises :class:`UsageError` naming the field and its bound. The registry runs this on every config it builds."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, bool) or not _is_number(value):
            continue
        if isinstance(value, numbers.Integral):
            role, high = ceiling(f.name)
            if value > high:
                raise UsageError(f"{where}: {f.name}={value} is out of range; allowed: {f.name} <= {high} ({role})")
        elif not math.isfinite(value):
            raise UsageError(f"{where}: {f.name}={value} is not finite; give a finite number")


def check_device(device: str) -> None:
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise UsageError(f"--device {device!r} is not a torch device ({exc}); use cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                             f"allowed: cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {device}: MPS is not available on this machine; use --device cpu")


def read_json(path: str | os.PathLike, missing: str, invalid: str = "") -> Any:
    """The content of a JSON file a user named, or one line that says what was wrong with it: ``missing`` says
    what to do when there is no such file, ``invalid`` (optional) when it is not JSON."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {missing}")
    hint = f"; {invalid}" if invalid else ""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}){hint}") \
            from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text file, so not JSON{hint}") from None


def check_output_folder(out: Path) -> None:
    """``out`` can become (or already is) a run folder: creatable, writable, and not someone's other files.

    Creates nothing."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"--out {out} is a file, not a folder; choose a new folder or an existing run folder")
        if not os.access(out, os.W_OK | os.X_OK):
            raise UsageError(f"--out {out} is not writable; choose a folder you can write to")
        # a run folder has its store, or at least the lock of a run that is just starting
        if not any((out / name).exists() for name in ("store.sqlite", "run.lock")) and any(out.iterdir()):
            raise UsageError(f"--out {out} holds other files and is not a run folder; choose a new or empty folder")
        return
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"--out {out} cannot be created: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out} cannot be created: {parent} is not writable")
