"""Settings declared once (issue 22): each of these is named, as a word, in at most three modules under
components/ — its declaration, its use in the XML or the seed, and at most one more. A fourth is a copy."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

COMPONENTS = Path(__file__).resolve().parents[2] / "components"


@pytest.mark.parametrize("setting", ["secure_boot", "kernel_args", "home_on_removal", "autologin"])
def test_a_setting_is_named_in_at_most_three_modules(setting):
    word = re.compile(rf"\b{setting}\b")
    naming = sorted(str(p.relative_to(COMPONENTS)) for p in COMPONENTS.rglob("*.py") if word.search(p.read_text()))
    assert 1 <= len(naming) <= 3, f"{setting} is named in {len(naming)} modules: {naming}"
