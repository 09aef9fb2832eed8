"""Named suites: which methods, targets, surrogates, adversaries, users and splits a run covers.

A suite expands into cells (dataset x scenario x method x adversary x target x seed). Names in a suite that are
not registered fail up front with the list of known ones; registered targets whose weights cannot be had are
reported ``unavailable`` and the run carries on with the rest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bench.core.validation import COUNT, Interval, UsageError, at_least, check_ranges
from bench.data.datasets import SplitSpec
from bench.measures.psr import PROTOCOLS
from bench.registry import did_you_mean

# Named split presets (``bench run --split``). Chameleon (ECCV 2024, git-disl/Chameleon): probe / gallery / train
# = 10% / 20% / 70%, seed 2023.
CHAMELEON_SPLIT = SplitSpec(gallery_fraction=0.2, probe_fraction=0.1, seed=2023)
SPLITS = {"chameleon": CHAMELEON_SPLIT}
SPACES = ("crop", "photo")
# probe and gallery: a recogniser with a gallery (bench.measures.psr); linkage: a tracker linking posted photos to each
# other, and linkage-anchored: the same tracker holding one clean photo of every user too (bench.measures.psr
# .linkage_outcomes).
SCENARIOS = ("probe", "gallery", "linkage", "linkage-anchored")


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    methods: tuple[str, ...]
    # Targets to evaluate; "*" expands to every registered target (unavailable ones are reported as such).
    targets: tuple[str, ...]
    # Differentiable models the methods optimise against (never an evaluated target unless white_box).
    surrogates: tuple[str, ...]
    adversaries: tuple[str, ...] = ("none", "jpeg-75")
    dataset: str = "lfw"
    users: int | str = 4  # protected identities; "all": every identity with at least min_user_photos photos
    gallery_identities: int | None = 20  # users included; None = every identity with enough photos
    # Which disjoint draw of users (``bench run --repeats``): the users are the draw-th block of ``users`` in the
    # seeded order of eligible identities, so draws never share a user.
    draw: int = 0
    min_user_photos: int = 10
    min_gallery_photos: int = 3
    split: SplitSpec = field(default_factory=SplitSpec)
    seeds: tuple[int, ...] = (0,)
    # "probe": protected photos are the queries against a clean gallery (OPOM/Chameleon/FaceCloak);
    # "gallery": the recogniser enrols protected photos and is queried with clean ones (Fawkes/LowKey);
    # "linkage" / "linkage-anchored": a tracker links the posted protected photos to each other (Protego).
    scenarios: tuple[str, ...] = ("probe",)
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Methods too costly for the run's machine protect only the first N of the run's users (the leaderboard's
    # entry counts them, and the generated method table says so on the method's row).
    method_users: dict[str, int] = field(default_factory=dict)
    adversary_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    quantize: bool = True  # protected photos are published as 8-bit images
    # How probe-scenario queries are scored (bench.measures.psr.probe_outcome): "templates", one template per gallery
    # identity (ours); "opom-pairs", OPOM's protocol: each query vs ONE clean photo of the user plus
    # distractors, over all query/photo pairs, top-1/5/10.
    protocol: str = "templates"
    # Where the recogniser meets a protected face (docs/photos.md): "crop", the aligned canvas the method made;
    # "photo", the change put back into the user's photo, saved as JPEG at photo_jpeg_quality (a typical
    # platform re-encode), re-detected and re-aligned by the target's own detector (Target.attacker_detector).
    space: str = "crop"
    photo_jpeg_quality: int = 90
    white_box: bool = False  # True: surrogates may also be evaluated targets (marked white-box in results)
    examples: int = 4  # example crops per method kept for the report

    def __post_init__(self) -> None:
        unknown = set(self.scenarios) - set(SCENARIOS)
        if unknown or not self.scenarios:
            raise UsageError(f"suite '{self.name}': scenarios must be among {', '.join(SCENARIOS)}; "
                             f"got {self.scenarios}")
        where = f"suite '{self.name}': "
        if self.protocol not in PROTOCOLS:
            raise UsageError(f"{where}protocol={self.protocol!r}; allowed: {', '.join(PROTOCOLS)}")
        if self.space not in SPACES:
            raise UsageError(f"{where}space={self.space!r}; allowed: {', '.join(SPACES)}")
        if self.space == "photo" and set(self.scenarios) != {"probe"}:
            raise UsageError(f"{where}space=photo scores the probe scenario only (the gallery and linkage "
                             "scenarios compare canvases); allowed: scenarios=('probe',) with space=photo")
        # a protected user needs a gallery, a probe and a fit photo
        check_ranges(self, where, min_user_photos=at_least(3, whole=True), min_gallery_photos=COUNT,
                     examples=at_least(0, whole=True), draw=at_least(0, whole=True),
                     photo_jpeg_quality=Interval(1, 100, whole=True))
        if self.users == "all" and self.draw:
            raise UsageError(f"{where}users=all takes every eligible identity: there is no other draw (draw=0)")
        if self.users != "all":
            check_ranges(self, where, users=COUNT)
        if self.gallery_identities is not None and self.users != "all":
            check_ranges(self, where, gallery_identities=COUNT)
            if self.gallery_identities < self.users:  # the gallery holds the users and distractors
                raise UsageError(f"{where}users={self.users} exceeds gallery_identities={self.gallery_identities}; "
                                 f"allowed: users <= gallery_identities (raise --gallery-identities or lower --users)")
        for name, count in self.method_users.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 1 or (
                    self.users != "all" and count > self.users):
                raise UsageError(f"{where}method_users[{name!r}]={count!r}; allowed: a whole number from 1 to "
                                 f"the suite's users ({self.users})")
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
            raise UsageError(f"{where}seeds={self.seeds!r}; allowed: one or more whole numbers")
        for field_name in ("methods", "targets", "surrogates", "adversaries"):
            if not getattr(self, field_name):
                raise UsageError(f"{where}{field_name} is empty; allowed: one or more names")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, **changes: Any) -> Suite:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# The methods the benchmark started with: personalised masks and per-image cloaks.
SEED_METHODS = ("chameleon", "opom-class-center", "uap", "facecloak", "pgd", "fawkes-low", "lowkey")

# The methods suite's methods that would take over an hour of CPU time each at 10 users (its dry run on one
# thread: Square 426 s a photo at 10,000 queries, Square impersonation 364 s, TIP-IM 165 s, TIP-IM with MMD
# 153 s; AdvHat's two stages ran 1,571 steps, 2,200 s, for one user on a busy core), each held to the users that
# keep it near an hour (at least 2).
METHODS_SUITE_REDUCED: dict[str, int] = {"square": 2, "square-impersonation": 2, "tip-im": 4, "tip-im-mmd": 5,
                                         "adv-hat": 4}

SUITES: dict[str, Suite] = {
    "smoke": Suite(
        name="smoke",
        description="PGD vs SFace (white-box) on 4 users, 20-identity gallery: a few minutes on 2 CPU cores",
        methods=("pgd",),
        targets=("sface",),
        surrogates=("sface",),
        adversaries=("none", "jpeg-75"),
        users=4,
        gallery_identities=20,
        min_user_photos=10,
        white_box=True,
        split=SplitSpec(gallery_fraction=0.2, probe_fraction=0.3),
    ),
    "quick": Suite(
        name="quick",
        description="the main job, minutes on 2 CPU cores: Chameleon against two universal baselines (OPOM "
                    "class-center, UAP) and a per-image one (PGD), each at its paper's settings; 5 targets (the 2 "
                    "surrogates white-box, 3 unseen including ArcFace), no adversary, JPEG-75, mask estimation and "
                    "the dynamic gallery; probe scenario and the trackers linking posts (linkage, linkage-anchored); "
                    "4 users with 20 photos (4 gallery / 6 probe / 10 fit), a 50-identity gallery. Left to `full` "
                    "for their CPU cost: Fawkes (10 s a photo in low mode), LowKey (12 s), TIP-IM (minutes), "
                    "FaceCloak, OPOM's other losses",
        methods=("chameleon", "opom-class-center", "uap", "pgd"),
        targets=("sface", "dlib-resnet", "faceres", "mobileface", "arcface-mbf"),
        surrogates=("sface", "dlib-resnet"),
        # linkage and the dynamic gallery reuse the probe photos' embeddings: a few CPU seconds in all
        adversaries=("none", "jpeg-75", "mask-estimation", "dynamic-gallery"),
        scenarios=("probe", "linkage", "linkage-anchored"),
        users=4,
        gallery_identities=50,
        white_box=True,
        split=SplitSpec(gallery_fraction=0.2, probe_fraction=0.3),
    ),
    "methods": Suite(
        name="methods",
        description="the method table (docs/methods.md): every registered method at its defaults on the same 10 "
                    "users (20 photos: 4 gallery / 6 probe / 10 fit), a 50-identity gallery; the 2 surrogates "
                    "white-box and 3 unseen targets; no adversary, JPEG-75 and mask estimation. The methods too "
                    "costly for a CPU protect fewer of the users (method_users; their rows say so). CPU hours: "
                    "price it with `bench run --suite methods --dry-run`",
        methods=("*",),
        targets=("sface", "dlib-resnet", "faceres", "mobileface", "arcface-mbf"),
        surrogates=("sface", "dlib-resnet"),
        adversaries=("none", "jpeg-75", "mask-estimation"),
        users=10,
        gallery_identities=50,
        white_box=True,
        split=SplitSpec(gallery_fraction=0.2, probe_fraction=0.3),
        method_users=METHODS_SUITE_REDUCED,
    ),
    "adaptive": Suite(
        name="adaptive",
        description="the training adversaries (learned purification, robust fine-tuning) and the dynamic gallery "
                    "against the seed methods: the owner protects 12 of its own people with each method and trains; "
                    "SFace (a surrogate) and MobileFace (never seen) judge, probe, gallery and linkage scenarios, "
                    "4 users",
        methods=SEED_METHODS,
        targets=("sface", "mobileface"),
        surrogates=("sface", "dlib-resnet"),
        adversaries=("none", "purification", "robust-finetune", "dynamic-gallery"),
        users=4,
        gallery_identities=50,
        # Fawkes and LowKey protect what the recogniser enrols (gallery); the masks protect queries (probe); a
        # tracker links posts (linkage).
        scenarios=("probe", "gallery", "linkage"),
        white_box=True,
        split=SplitSpec(gallery_fraction=0.2, probe_fraction=0.3),
    ),
    "full": Suite(
        name="full",
        description="every registered method, target, adversary and scenario; 50 users "
                    "(`--users all`: every identity with 10+ photos, 135 in the shared LFW) against every LFW "
                    "identity; Chameleon's 10/20/70 split; 3 candidate surrogates, from which Chameleon picks its "
                    "team of 2 by focal diversity. Hours on a GPU: price it first with `bench run --suite full "
                    "--dry-run`",
        methods=("*",),
        targets=("*",),
        surrogates=("sface", "dlib-resnet", "faceres-deep"),
        adversaries=("*",),
        users=50,  # enough that a transfer figure survives a new draw of people (docs/protocol.md)
        gallery_identities=None,
        scenarios=SCENARIOS,
        white_box=True,
        split=CHAMELEON_SPLIT,
    ),
}


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise KeyError(f"unknown suite '{name}'{did_you_mean(name, SUITES)}. Known suites: {', '.join(sorted(SUITES))}"
                       ) from None
