"""Plug-in registries for methods, adversaries and targets (in the spirit of timm's register_model/create_model).

A plug-in class registers itself with ``@METHODS.register("name", **preset)``; presets let one file expose
several variants (``fawkes-low``, ``opom-fi-uap`` ...). Registries are filled lazily from Python entry points
(groups ``cloakbench.methods``, ``cloakbench.attacks`` for adversaries, ``cloakbench.targets``): an entry names a module or a
package, and every module of a package is imported. ``bench`` itself never imports a plug-in by name.

A module that fails to import is recorded, not fatal: ``bench list`` shows it as unavailable with the error.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import math
import pkgutil
import traceback
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from bench.core.validation import UsageError, check_config_ceilings

T = TypeVar("T")


class UnknownNameError(KeyError):
    """An unknown plug-in name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text
        return str(self.args[0])


class ConfigError(ValueError):
    """A bad configuration value or key for a plug-in."""


def did_you_mean(name: str, known: list[str] | set[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest known name to a misspelt one, or ``""`` when none is close."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass
class Entry:
    name: str
    cls: type
    preset: dict[str, Any] = field(default_factory=dict)

    def availability(self) -> tuple[bool, str | None]:
        check = getattr(self.cls, "availability", None)
        if check is None:
            return True, None
        try:
            return check(**self.preset) if _accepts_kwargs(check) else check()
        except Exception as exc:  # an availability probe must never take the listing down
            return False, f"availability check failed: {exc}"


def _accepts_kwargs(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind == p.VAR_KEYWORD for p in params)


def build_config(config_cls: type, values: dict[str, Any], where: str) -> Any:
    """Instantiate a dataclass config, rejecting unknown keys with the list of valid ones and values whose type
    does not fit the field (a word where a number goes, 2.5 steps)."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown config key(s) {unknown}{did_you_mean(unknown[0], names)}; valid keys: "
                          f"{sorted(names)}")
    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:  # an annotation that does not resolve: leave the check to the config itself
        hints = {}
    for key, value in values.items():
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError(f"{where}: {key}=nan is not a value; give a number")
        expected = _expected_type(value, hints.get(key))
        if expected:
            raise ConfigError(f"{where}: {key}={value!r} is not {expected}")
    try:
        config = config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {' '.join(str(exc).split())}") from exc
    try:
        check_config_ceilings(config, where)
    except UsageError as exc:
        raise ConfigError(str(exc)) from None
    return config


_SIMPLE_TYPES = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _expected_type(value: Any, hint: Any) -> str | None:
    """What ``value`` should have been for an annotation of simple types (None when it fits or is not checked)."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if any(option not in (*_SIMPLE_TYPES, type(None)) for option in options):
        return None  # a container, Literal or class: checked by the config itself
    for option in options:
        if option is type(None) and value is None:
            return None
        if option is bool and isinstance(value, bool):
            return None
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return None
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return None
        if option is str and isinstance(value, str):
            return None
    return " or ".join(_SIMPLE_TYPES.get(o, "null") for o in options)


class Registry(Generic[T]):
    def __init__(self, kind: str, group: str, plural: str | None = None):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.group = group
        self._entries: dict[str, Entry] = {}
        self._broken: dict[str, str] = {}
        self._loaded = False

    # -- registration -------------------------------------------------------------------------------
    def register(self, name: str, **preset: Any) -> Callable[[type], type]:
        """Class decorator: ``@REGISTRY.register("name", **config_preset)``. May be stacked for variants."""

        def decorator(cls: type) -> type:
            existing = self._entries.get(name)
            if existing is not None and existing.cls.__qualname__ != cls.__qualname__:
                raise ValueError(f"{self.kind} '{name}' is registered twice ({existing.cls} and {cls})")
            self._entries[name] = Entry(name, cls, dict(preset))
            cls.registered_names = (*getattr(cls, "registered_names", ()), name)
            return cls

        return decorator

    # -- discovery ----------------------------------------------------------------------------------
    def load_plugins(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=self.group):
            self._import_tree(ep.value.split(":")[0])

    def _import_tree(self, module_name: str) -> None:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            self._broken[module_name] = _short_error(exc)
            return
        for info in pkgutil.iter_modules(getattr(module, "__path__", []) or []):
            if info.name.startswith("_") or info.name == "base":
                continue
            child = f"{module_name}.{info.name}"
            try:
                importlib.import_module(child)
            except Exception as exc:
                self._broken[child] = _short_error(exc)

    # -- lookup -------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._entries)

    def broken_modules(self) -> dict[str, str]:
        self.load_plugins()
        return dict(self._broken)

    def entry(self, name: str) -> Entry:
        self.load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "(none)"
            hint = ""
            if self._broken:
                hint = f"; modules that failed to import: {', '.join(sorted(self._broken))}"
            raise UnknownNameError(f"unknown {self.kind} '{name}'{did_you_mean(name, self._entries)}. Known "
                                   f"{self.plural}: {known}{hint}") from None

    def create(self, name: str, **overrides: Any) -> T:
        """Instantiate ``name`` with its preset config, overridden by ``overrides``."""
        entry = self.entry(name)
        values = {**entry.preset, **overrides}
        config_cls = getattr(entry.cls, "Config", None)
        if config_cls is None:
            if values:
                raise ConfigError(f"{self.kind} '{name}' takes no config, got {sorted(values)}")
            obj = entry.cls()
        else:
            obj = entry.cls(build_config(config_cls, values, f"{self.kind} '{name}'"))
        obj.name = name
        return obj

    def describe(self) -> list[dict[str, Any]]:
        """One record per registered name (and per broken module), for ``bench list --json``."""
        rows = []
        for name in self.names():
            entry = self._entries[name]
            ok, reason = entry.availability()
            row = {"name": name, "available": bool(ok), "reason": None if ok else reason}
            describe = getattr(entry.cls, "describe", None)
            if describe is not None:
                kwargs = dict(entry.preset) if _accepts_kwargs(describe) else {}
                if "name" in inspect.signature(describe).parameters:
                    kwargs["name"] = name  # a class registered under several names learns which one it is
                row.update(describe(**kwargs))
            row.setdefault("description", summary(entry.cls))
            config_cls = getattr(entry.cls, "Config", None)
            if dataclasses.is_dataclass(config_cls):
                try:  # the preset's full config: what `bench run --set NAME.KEY=VALUE` can change
                    row["config"] = dataclasses.asdict(config_cls(**entry.preset))
                except (TypeError, ValueError) as exc:
                    row["config_error"] = str(exc)
            rows.append(row)
        for module, error in sorted(self._broken.items()):
            rows.append({"name": module, "available": False, "reason": f"module failed to import: {error}"})
        return rows


def summary(cls: type) -> str:
    """What a plug-in is, in its own words: the first paragraph of its class docstring, else of its module's."""
    doc = cls.__dict__.get("__doc__") or getattr(inspect.getmodule(cls), "__doc__", None) or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def _short_error(exc: BaseException) -> str:
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return last[:500]


METHODS: Registry = Registry("method", "cloakbench.methods")
ADVERSARIES: Registry = Registry("adversary", "cloakbench.attacks", plural="adversaries")
ATTACKS = ADVERSARIES  # the registry's earlier name, kept for plug-ins that import it
TARGETS: Registry = Registry("target", "cloakbench.targets")
