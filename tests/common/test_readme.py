"""The README documents every setting the code reads."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from common.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme() -> None:
    text = README.read_text()
    missing = [f.name.upper() for f in fields(Settings) if f"`{f.name.upper()}`" not in text]
    assert not missing, f"README.md settings table lacks {missing}"


def test_readme_opens_with_the_two_commands() -> None:
    head = README.read_text()[:600]
    assert "make run" in head and "make test" in head
