"""Every setting is documented: .env.example lists each with its default (and loading it
changes nothing), and the README names each one."""

from __future__ import annotations

import os

import pytest

from fitq.settings import Settings
from tests.processes import REPO_ROOT

NAMES = [f"FITQ_{name.upper()}" for name in Settings.model_fields]


def env_example() -> dict[str, str]:
    values = {}
    for line in (REPO_ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def test_env_example_lists_every_setting() -> None:
    text = (REPO_ROOT / ".env.example").read_text()
    missing = [name for name in NAMES if f"{name}=" not in text]
    assert missing == []


def test_env_example_holds_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("FITQ_")]:
        monkeypatch.delenv(key)
    defaults = Settings()
    for key, value in env_example().items():
        monkeypatch.setenv(key, value)
    assert Settings() == defaults


def test_readme_names_every_setting() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    missing = [name for name in NAMES if name not in readme]
    assert missing == []
