"""The oblivious adversary: the recogniser sees the protected photos as published."""

from __future__ import annotations

from dataclasses import dataclass

from attacks.base import Adversary
from bench.api import ADVERSARIES


@dataclass
class NoneConfig:
    pass


@ADVERSARIES.register("none")
class NoAdversary(Adversary):
    kind = "transform"
    Config = NoneConfig
