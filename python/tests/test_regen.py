"""Regeneration is byte-identical (needs torch)."""

import pytest

pytest.importorskip("torch")

from check_regen import regenerate_and_compare  # noqa: E402


def test_regenerated_capture_is_byte_identical(goldens_dir):
    diffs = regenerate_and_compare(goldens_dir)
    assert not diffs, "\n".join(diffs)
