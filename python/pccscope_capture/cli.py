"""`pccscope-capture`: write a golden capture, make or inspect a checkpoint.

    pccscope-capture [capture] --preset tiny --out goldens/pi0-tiny --seed 0
    pccscope-capture make-checkpoint --preset tiny --out FILE --seed 0
    pccscope-capture inspect-checkpoint FILE [--preset pi0_base]

Exit codes: 0 ok, 1 error while running, 2 usage or setup error (bad checkpoint, bad flag).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from typing import List, Optional

from .config import PRESETS, preset


def _capture_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pccscope-capture",
                                description="Run the PyTorch pi0 reference once and write a "
                                            "golden capture (manifest.json + safetensors).")
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--out", required=True, help="capture directory")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs and random init")
    p.add_argument("--checkpoint", help="existing pi0 safetensors checkpoint (default: write a "
                                        "seeded random-init one into OUT/checkpoint.safetensors)")
    p.add_argument("--stats-only-above", type=int, metavar="N",
                   help="store only statistics for tensors with more than N elements")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--cameras", type=int, help="override the preset's camera count")
    p.add_argument("--image-size", type=int, help="override the preset's image size")
    p.add_argument("--lang-tokens", type=int, help="override the preset's token count")
    p.add_argument("--lang-valid", type=int, help="override the preset's valid token count")
    return p


def _make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pccscope-capture make-checkpoint",
                                description="Write a seeded random-init pi0 checkpoint (bf16, "
                                            "real pi0_base naming).")
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--out", required=True, help="output .safetensors file")
    p.add_argument("--seed", type=int, default=0)
    return p


def _inspect_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pccscope-capture inspect-checkpoint",
                                description="Validate a checkpoint and print its naming and the "
                                            "config inferred from its shapes.")
    p.add_argument("checkpoint")
    p.add_argument("--preset", choices=sorted(PRESETS), default="pi0_base",
                   help="supplies what shapes cannot tell (head counts, input sizes)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = "capture"
    if argv and argv[0] in ("capture", "make-checkpoint", "inspect-checkpoint"):
        cmd = argv.pop(0)
    parser = {"capture": _capture_parser, "make-checkpoint": _make_parser,
              "inspect-checkpoint": _inspect_parser}[cmd]()
    args = parser.parse_args(argv)
    if importlib.util.find_spec("torch") is None:
        print(f"pccscope-capture: error: {cmd} needs torch; install the torch extra: "
              "pip install -e 'python[torch]'", file=sys.stderr)
        return 2
    from .checkpoint import CheckpointError

    try:
        base = preset(args.preset)
        if cmd == "make-checkpoint":
            from .checkpoint import make_checkpoint

            path = make_checkpoint(base, args.seed, args.out, preset=args.preset)
            print(f"wrote {path}")
        elif cmd == "inspect-checkpoint":
            from .checkpoint import load_checkpoint

            ld = load_checkpoint(args.checkpoint, base)
            print(json.dumps({"naming": ld.naming, "dtype": ld.dtype, "tensors": ld.count,
                              "config": ld.config.to_dict()}, indent=2))
        else:
            from .capture import run_capture, with_inputs

            cfg = with_inputs(base, cameras=args.cameras, image_size=args.image_size,
                              lang_tokens=args.lang_tokens, lang_valid=args.lang_valid)
            res = run_capture(cfg, args.out, preset=args.preset, seed=args.seed,
                              checkpoint=args.checkpoint,
                              stats_only_above=args.stats_only_above, threads=args.threads)
            print(f"wrote {res.manifest} (actions {list(res.actions.shape)})")
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        print(f"pccscope-capture: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
