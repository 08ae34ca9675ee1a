"""A pytest fixture for the game-space tests: each test computes (and caches) reference
curves in its own folder, so no test reads a curve another one wrote.

Import it into a test module (``from tests.reference_cache import private_reference_cache``);
it applies to every test there.
"""

import pytest

from search_spaces.game_space import GameSpace


@pytest.fixture(autouse=True)
def private_reference_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(GameSpace, "reference_dir", lambda self: tmp_path / "reference")
    monkeypatch.setattr(GameSpace, "_curves", {})
    return tmp_path / "reference"
