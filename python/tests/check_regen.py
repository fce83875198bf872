"""Regenerate goldens/pi0-tiny into a temporary directory and compare every file byte for
byte with the committed one.

    python python/tests/check_regen.py      # exit 0: identical; 1: differences (listed)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
GOLDENS = HERE.parent.parent / "goldens" / "pi0-tiny"


def regenerate_and_compare(goldens: Path = GOLDENS) -> List[str]:
    """Differences between `goldens` and a fresh `--preset tiny --seed 0` capture."""
    from pccscope_capture.capture import run_capture
    from pccscope_capture.config import preset

    with tempfile.TemporaryDirectory(prefix="pccscope-regen-") as tmp:
        run_capture(preset("tiny"), tmp, preset="tiny", seed=0)
        fresh = {p.name: p for p in Path(tmp).iterdir() if p.is_file()}
        old = {p.name: p for p in goldens.iterdir() if p.is_file()}
        diffs = [f"only in the fresh capture: {n}" for n in sorted(fresh.keys() - old.keys())]
        diffs += [f"only in {goldens}: {n}" for n in sorted(old.keys() - fresh.keys())]
        for n in sorted(fresh.keys() & old.keys()):
            a, b = fresh[n].read_bytes(), old[n].read_bytes()
            if a != b:
                at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                diffs.append(f"{n}: differs (sizes {len(a)} vs {len(b)}, first at byte {at})")
    return diffs


def main() -> int:
    diffs = regenerate_and_compare()
    for d in diffs:
        print(d)
    print("regenerated capture is byte-identical" if not diffs else
          f"{len(diffs)} difference(s); regenerate with: pccscope-capture --preset tiny "
          "--out goldens/pi0-tiny --seed 0")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
