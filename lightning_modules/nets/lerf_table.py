"""The LERF table's cache format: one JSON file per backbone, input size, number of initialisations, seed and
gradient reading, ``{conv layer module name: LERF in pixels}`` (``dds`` paper §2.1). ``dermlab lerf --out`` writes
it and the layer-selection callback reads it (or computes and writes it), so grids and resumed runs compute each
table once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lightning_modules.nets.lerf import Gradient, create_net, lerf


def lerf_cache_path(cache: str | Path, backbone: str, size: int, inits: int, seed: int,
                    gradient: Gradient = "signed") -> Path:
    """The table's file in folder ``cache``: every setting that changes the values is in its name."""
    name = f"lerf_{backbone.replace(':', '_')}_{size}px_{inits}inits_seed{seed}_{gradient}.json"
    return Path(cache) / name


def save_lerf_table(path: Path, values: dict[str, float]) -> None:
    """Write ``values`` ({conv layer module name: LERF in pixels}) to ``path`` atomically (temporary file, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # ranks and parallel cells may write the same table at once
    tmp.write_text(json.dumps(values, indent=1))
    tmp.replace(path)


def lerf_table(backbone: str, size: int, inits: int = 20, seed: int = 0, cache: str | Path | None = None,
               gradient: Gradient = "signed") -> dict[str, float]:
    """LERF per conv layer (module names), read from or written to ``cache/lerf_<backbone>_<size>px_...json``."""
    path = lerf_cache_path(cache, backbone, size, inits, seed, gradient) if cache else None
    if path and path.is_file():
        return json.loads(path.read_text())
    values, _ = lerf(create_net(backbone), size, inits, seed=seed, gradient=gradient)
    if path:
        save_lerf_table(path, values)
    return values
