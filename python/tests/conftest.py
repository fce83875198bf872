import sys
from pathlib import Path

import pytest

PYTHON_DIR = Path(__file__).resolve().parents[1]
REPO = PYTHON_DIR.parent
GOLDENS = REPO / "goldens" / "pi0-tiny"

if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))


@pytest.fixture(scope="session")
def goldens_dir() -> Path:
    if not (GOLDENS / "manifest.json").exists():
        pytest.fail(f"{GOLDENS}/manifest.json is missing; regenerate it (goldens/README.md)")
    return GOLDENS
