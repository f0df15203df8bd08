"""The split audit: proof that no test image, and no lesion of a test image, helps train or select a model.

:func:`audit_splits` compares the images of the four roles a run gives them — ``train``, ``val`` (chooses
the checkpoint), ``test`` (is reported) and ``extra`` (further training images, ``extra_train_csv``) — and
finds, between any two of them:

(a) **shared lesions**: the same lesion (or patient) id on both sides, where both sides have ids;
(b) **shared images**: the same image id on both sides (compared by :func:`canonical_id`: ISIC 2019's
    ``ISIC_0000017_downsampled`` is ISIC 2017's ``ISIC_0000017``);
(c) **duplicate images**: different ids whose decoded pixels are identical (exact fingerprints, see
    :mod:`datamodules.fingerprints`), or that a published duplicates list pairs (ISIC 2020's
    ``ISIC_2020_Training_Duplicates.csv``, columns ``image_name_1,image_name_2``);
(d) optionally **near duplicates** (perceptual hashes within :data:`~datamodules.fingerprints.NEAR_DUPLICATE_BITS`
    bits): reported with their pairs, not counted as a leak (a look-alike need not be the same lesion).

Anything shared between ``train`` and ``extra`` is reported but is no leak (both only train). Every other
pair is a leak: test ↔ anything lets the test set help train or select, and val ↔ training makes the
checkpoint selection optimistic.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datamodules.fingerprints import NEAR_DUPLICATE_BITS, FingerprintStore
from dermlab.errors import DataError
from dermlab.files.io import read_table

if TYPE_CHECKING:
    from datamodules.datasets.table import ImageTable

log = logging.getLogger(__name__)

ROLES = ("train", "val", "test", "extra")
DOWNSAMPLED = "_downsampled"  # ISIC 2019's suffix for the ISIC-archive images it ships downsampled
HARMLESS = {("train", "extra")}  # both sides only train
SHOWN = 10  # pairs named in an error message


@dataclass
class SplitAudit:
    """What :func:`audit_splits` found; ``to_json()`` is what ``dermlab audit`` prints and ``splits/audit.json``
    holds. ``splits`` counts images per role (``None``: the role does not exist in this run); ``shared_lesions``
    and ``shared_images`` count per pair of roles (``"train/test"``); ``pairs`` lists the identical images under
    different ids across roles, ``pair_splits`` the roles of each pair; ``absent_images`` counts per role the listed
    images whose file is absent (examples under ``absent <role>``): ``dermlab audit`` reads the splits as listed, while
    a run's set-up has screened them out by then, so only the audit command sees any."""

    splits: dict[str, int | None]
    lesion_ids: dict[str, bool]
    shared_lesions: dict[str, int]
    shared_images: dict[str, int]
    duplicate_images: int
    pairs: list[list[str]]
    pair_splits: list[str]
    fingerprinted: int
    not_fingerprinted: int
    known_duplicates: str | None = None
    near_duplicates: dict | None = None
    examples: dict[str, list[str]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    absent_images: dict[str, int] = field(default_factory=dict)
    cross_test: dict | None = None  # the test split is another data set's (test_on): datamodules.cross.CrossTest

    @property
    def leaks(self) -> list[str]:
        """One line per kind of leak found (empty when the splits are clean)."""
        found = [f"{n} lesion id(s) shared by {k} (e.g. {', '.join(self.examples.get('lesions ' + k, []))})"
                 for k, n in self.shared_lesions.items() if n and _is_leak(k)]
        found += [f"{n} image id(s) in both {k} (e.g. {', '.join(self.examples.get('images ' + k, []))})"
                  for k, n in self.shared_images.items() if n and _is_leak(k)]
        if self.duplicate_images:
            shown = "; ".join(f"{a} ({s.split('/')[0]}) = {b} ({s.split('/')[1]})"
                              for (a, b), s in zip(self.pairs[:SHOWN], self.pair_splits[:SHOWN], strict=True))
            found.append(f"{self.duplicate_images} pair(s) of identical images under different ids across splits: "
                         f"{shown}")
        return found

    @property
    def leak(self) -> bool:
        """Whether anything leaks (:attr:`leaks` is not empty); shared train / extra images are no leak."""
        return bool(self.leaks)

    def to_json(self) -> dict[str, Any]:
        """Every field (``dataclasses.asdict``) plus ``leak`` and ``leaks``: what ``dermlab audit`` prints and
        ``splits/audit.json`` holds."""
        return {**asdict(self), "leak": self.leak, "leaks": self.leaks}


def _is_leak(pair: str) -> bool:
    a, b = pair.split("/")
    return (a, b) not in HARMLESS and (b, a) not in HARMLESS


def canonical_id(image_id: str) -> str:
    """An image id without ISIC 2019's ``_downsampled`` suffix: ``ISIC_0000017_downsampled`` and ``ISIC_0000017``
    (ISIC 2017) name the same image (ISIC 2019 ships some ISIC-archive images downsampled under the suffixed id)."""
    return image_id[: -len(DOWNSAMPLED)] if image_id.endswith(DOWNSAMPLED) else image_id


def read_duplicate_pairs(csv: Path) -> list[tuple[str, str]]:
    """A published duplicates list (ISIC 2020: ``image_name_1,image_name_2``) as id pairs."""
    table = read_table(csv, ("image_name_1", "image_name_2"), hint="Expected the ISIC 2020 duplicates layout.")
    return list(zip(table.image_name_1, table.image_name_2, strict=True))


def audit_splits(tables: dict, store: FingerprintStore | None = None, known_duplicates: Path | None = None,
                 exact: bool = True, near_duplicates: bool = False,
                 unavailable: dict[str, str] | None = None) -> SplitAudit:
    """Audit the ``train`` / ``val`` / ``test`` / ``extra`` tables (``None``: absent).

    Args:
        tables: role → table (missing roles count as empty).
        store: where exact (and perceptual) fingerprints come from; ``None`` skips the pixel checks.
        exact: compare exact pixel fingerprints (needs ``store``).
        known_duplicates: a duplicates list in the ISIC 2020 layout, applied to ids on different sides.
        near_duplicates: also compare perceptual hashes (needs ``store``).
        unavailable: role → why it could not be read (reported; the audit cannot speak for it).
    """
    present = {r: tables[r] for r in ROLES if tables.get(r) is not None and len(tables[r])}
    pairs_of_roles = list(itertools.combinations(present, 2))
    shared_lesions, shared_images, examples = {}, {}, {}
    for a, b in pairs_of_roles:
        key = f"{a}/{b}"
        ids = sorted({canonical_id(i) for i in present[a].ids} & {canonical_id(i) for i in present[b].ids})
        shared_images[key] = len(ids)
        examples[f"images {key}"] = ids[:SHOWN]
        if _lesions(present[a]) and _lesions(present[b]):
            lesions = sorted(_lesions(present[a]) & _lesions(present[b]))
            shared_lesions[key] = len(lesions)
            examples[f"lesions {key}"] = lesions[:SHOWN]
    from datamodules.datasets.table import file_size  # here: the readers import this module

    absent: dict[str, int] = {}
    for role, table in present.items():
        if len(table.paths) != len(table.ids):  # a table of ids only (no files to look at)
            continue
        gone = [i for i, path in zip(table.ids, table.paths, strict=True) if file_size(path) is None]
        if gone:
            absent[role], examples[f"absent {role}"] = len(gone), gone[:SHOWN]
    examples = {k: v for k, v in examples.items() if v}

    role_of = {}  # image id -> first role holding it (same-id clashes are counted above, not as duplicates)
    for role, table in present.items():
        for image_id in table.ids:
            role_of.setdefault(image_id, role)
    found: dict[tuple[str, str], str] = {}
    fingerprinted = missing = 0
    if store is not None and exact:
        by_print: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for role, table in present.items():
            prints = store.get(table.paths, "exact")
            for image_id, value in zip(table.ids, prints, strict=True):
                if value is None:
                    missing += 1
                else:
                    fingerprinted += 1
                    by_print[value].append((role, image_id))
        for members in by_print.values():
            for (ra, a), (rb, b) in itertools.combinations(members, 2):
                if ra != rb and canonical_id(a) != canonical_id(b):
                    found[_ordered(ra, a, rb, b)] = f"{ra}/{rb}" if ROLES.index(ra) < ROLES.index(rb) else f"{rb}/{ra}"
    if known_duplicates is not None:
        for a, b in read_duplicate_pairs(known_duplicates):
            ra, rb = role_of.get(a), role_of.get(b)
            if ra and rb and ra != rb:
                found[_ordered(ra, a, rb, b)] = f"{ra}/{rb}" if ROLES.index(ra) < ROLES.index(rb) else f"{rb}/{ra}"
    leaking = sorted((pair, roles) for pair, roles in found.items() if _is_leak(roles))

    near = None
    if near_duplicates and store is not None:
        near = _near_duplicates(present, store)
    return SplitAudit(
        splits={r: (len(tables[r]) if tables.get(r) is not None else None) for r in ROLES},
        lesion_ids={r: bool(_lesions(t)) for r, t in present.items()},
        shared_lesions=shared_lesions, shared_images=shared_images,
        duplicate_images=len(leaking), pairs=[list(p) for p, _ in leaking], pair_splits=[r for _, r in leaking],
        fingerprinted=fingerprinted, not_fingerprinted=missing,
        known_duplicates=str(known_duplicates) if known_duplicates else None, near_duplicates=near,
        examples=examples, unavailable=dict(unavailable or {}), absent_images=absent)


def _lesions(table: ImageTable) -> set[str]:
    """The table's lesion ids (empty strings stand for images of unknown lesion)."""
    return {g for g in table.groups if g} if table.groups is not None else set()


def _ordered(ra: str, a: str, rb: str, b: str) -> tuple[str, str]:
    """The pair with the id of the earlier role (train, val, test, extra) first."""
    return (a, b) if ROLES.index(ra) < ROLES.index(rb) else (b, a)


def _near_duplicates(present: dict, store: FingerprintStore) -> dict:
    """Pairs of images on different sides (not train / extra) whose pHashes differ in few bits."""
    ids, roles, hashes = [], [], []
    for role, table in present.items():
        for image_id, value in zip(table.ids, store.get(table.paths, "phash"), strict=True):
            if value is not None:
                ids.append(image_id)
                roles.append(role)
                hashes.append(int(value, 16))
    bits = np.array(hashes, dtype=np.uint64)
    role_index = np.array([ROLES.index(r) for r in roles])
    pairs = []
    for i in range(len(bits)):
        distance = _popcount(bits[i + 1:] ^ bits[i])
        for j in np.flatnonzero(distance <= NEAR_DUPLICATE_BITS) + i + 1:
            ra, rb = ROLES[role_index[i]], ROLES[role_index[j]]
            if ra != rb and _is_leak(f"{ra}/{rb}") and ids[i] != ids[j]:
                pairs.append([ids[i], ids[j], f"{ra}/{rb}", int(distance[j - i - 1])])
    return {"count": len(pairs), "max_bits": NEAR_DUPLICATE_BITS, "pairs": pairs}


def _popcount(values: np.ndarray) -> np.ndarray:
    """Set bits of each uint64."""
    as_bytes = values.view(np.uint8).reshape(-1, 8)
    return np.unpackbits(as_bytes, axis=1).sum(axis=1)


def enforce(audit: SplitAudit, leakage: str, where: str) -> None:
    """Act on an audit of ``where`` (a datamodule and its root): log what could not be audited and the near
    duplicates; on a leak raise a DataError naming the count and first pairs (``leakage: error``) or warn (``warn``).
    """
    for split, reason in audit.unavailable.items():
        log.warning("split audit: the %s split could not be read, so it is not audited (%s)", split, reason)
    if audit.near_duplicates and audit.near_duplicates["count"]:
        near = audit.near_duplicates
        log.warning("split audit: %d near-duplicate pair(s) across splits (pHash within %d bits), e.g. %s",
                    near["count"], near["max_bits"], near["pairs"][:3])
    if not audit.leak:
        return
    found = f"split audit of {where}: " + "; ".join(audit.leaks)
    if leakage == "error":
        raise DataError(found + ". Remove the copies from one side (and, where lesion ids exist, use a lesion-grouped "
                        "split), or set leakage: warn to go on knowingly; splits/audit.json then records the leak.")
    log.warning("leakage: warn — going on although the %s; splits/audit.json records it.", found)
