"""``dermlab weights``: import a foreign checkpoint as a timm ``.safetensors``; list the packaged weights.

``dermlab weights import SOURCE --arch TIMM_NAME --out FILE.safetensors`` maps the names of SOURCE (a
timm, torchvision or ``efficientnet_pytorch`` state dict, or ``pkg:NAME``) onto timm's ``TIMM_NAME``,
refusing on any count / shape mismatch (:mod:`lightning_modules.nets.weight_import`), and writes
``FILE.json`` beside it (source, SHA-256 of source and output, licence, architecture).
``dermlab weights list`` prints the ``pkg:`` names and whether their package is installed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json

from lightning_modules.nets.packaged_weights import EXTRA, PACKAGES, is_packaged, lookup, source_file
from lightning_modules.nets.weight_import import import_weights


def main(argv: list[str]) -> None:
    """Run ``dermlab weights import`` (convert, print the provenance JSON) or ``dermlab weights list``.

    Args:
        argv: the arguments after ``weights``: the verb and its options (module docstring).

    Raises:
        SystemExit: status 2 without ``--arch`` for a source that is not ``pkg:NAME``.
    """
    parser = argparse.ArgumentParser(prog="dermlab weights", description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    convert = verbs.add_parser("import", help="convert a checkpoint into a timm .safetensors with provenance")
    convert.add_argument("source", help="a .pth / .pt / .bin / .safetensors state dict, or pkg:NAME")
    convert.add_argument("--arch", help="timm architecture (default for pkg:NAME: the package's own)")
    convert.add_argument("--out", required=True, help="the .safetensors to write (its provenance: the same name .json)")
    convert.add_argument("--licence", default=None, help="licence of the weights, recorded in the provenance")
    verbs.add_parser("list", help="the pkg: names, their architecture and whether the package is installed")
    args = parser.parse_args(argv)
    if args.verb == "list":
        for name, entry in sorted(PACKAGES.items()):
            installed = importlib.util.find_spec(entry.module) is not None
            print(f"pkg:{name:20s} {entry.architecture:24s} "
                  f"{'installed' if installed else f'not installed: pip install -e .[{EXTRA}]'}  {entry.description}")
        return
    source, origin, licence, arch = args.source, None, args.licence or "unknown", args.arch
    if is_packaged(source):
        entry = lookup(source)
        source = source_file(args.source)
        origin = f"{entry.distribution}=={importlib.metadata.version(entry.distribution)}"
        licence, arch = args.licence or entry.licence, arch or entry.architecture
    if not arch:
        parser.error("--arch is required (the timm architecture the weights are for)")
    result = import_weights(source, arch, args.out, licence=licence, origin=origin)
    print(json.dumps(result.provenance, indent=2))
