"""Settings from the command line: ``--set NAME.KEY=VALUE`` config values (``bench run``, ``bench perf``,
``bench protect``) and the device and thread count a run uses."""

from __future__ import annotations

import json

from bench.core.devices import default_threads, resolve_device
from bench.core.validation import UsageError


def parse_value(text: str):
    """A config value from the command line: JSON (3, 0.5, true, "x", [1, 2]), a fraction such as 16/255, or
    else the text itself."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, an integer too long to convert, or nested too deep
        pass
    num, sep, den = text.partition("/")
    if sep:
        try:
            return float(num) / float(den)
        except (ValueError, ZeroDivisionError, OverflowError):
            pass
    return text


def method_overrides(base: dict, settings: list[str]) -> dict:
    """``NAME.KEY=VALUE`` settings merged over a suite's method (or adversary) overrides (the keys are checked when the
    method is built, with the list of valid ones)."""
    merged = {m: dict(v) for m, v in base.items()}
    for item in settings:
        target, eq, value = item.partition("=")
        method, dot, key = target.rpartition(".")
        if not (eq and dot and method and key):
            raise UsageError(f"--set takes NAME.KEY=VALUE (e.g. pgd.steps=50 or chameleon.epsilon=8/255), got "
                             f"{item!r}")
        merged.setdefault(method, {})[key] = parse_value(value)
    return merged


def one_method_overrides(method: str, settings: list[str]) -> dict:
    """``--set`` of a command that runs one method (``bench protect``): ``NAME.KEY=VALUE`` as in ``bench run``,
    NAME being that method, or ``KEY=VALUE`` for short."""
    named = []
    for item in settings:
        key = item.partition("=")[0]
        if "." in key and not key.startswith(f"{method}."):
            raise UsageError(f"--set {item}: this command runs {method} only; write {method}.KEY=VALUE or KEY=VALUE")
        named.append(item if "." in key else f"{method}.{item}")
    return method_overrides({}, named).get(method, {})


def device_and_threads(args) -> tuple[str, int]:
    """``--device`` resolved (auto: CUDA when present) and ``--threads`` (default: the cores this process may use)."""
    return resolve_device(args.device), default_threads() if args.threads is None else args.threads
