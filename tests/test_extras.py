"""Optional extras: what each contains comes from the installed metadata, a space that needs
a missing one is listed but never imported, and every command that needs one stops with one
line naming it."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from discover import extras
from discover.spaces import get_space, space_catalogue

ROOT = Path(__file__).resolve().parents[1]


def pyproject_extra(name: str) -> set[str]:
    """The package names an extra lists in pyproject.toml, self-references expanded."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    out = set()
    for line in table[name]:
        req = Requirement(line)
        if req.name == "discover":
            for sub in req.extras:
                out |= pyproject_extra(sub)
        else:
            out.add(req.name)
    return out


@pytest.mark.parametrize("extra", ["rl", "llm", "postgres", "test"])
def test_an_extra_is_what_pyproject_lists(extra):
    assert {r.name for r in extras.extra_requirements(extra)} == pyproject_extra(extra)


def test_the_rl_extra_declares_what_gymnax_imports_without_declaring():
    assert "six" in pyproject_extra("rl")


def fake_distribution(site: Path, name: str, requires: list[str], entry_points: str = "") -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: " + name + "\nVersion: 1.0\n"
                                   + "".join(f"Requires-Dist: {r}\n" for r in requires))
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """An installed third-party distribution whose space needs its extra 'gpu', which needs a
    package that does not exist; the space's module does not exist either, so listing the
    space must not import it."""
    site = tmp_path / "site"
    fake_distribution(site, "faraway_spaces", ["numpy", 'no-such-package-zz>=1; extra == "gpu"',
                                               'numpy>=1; extra == "cpu"'],
                      "[discover.spaces]\nfaraway = faraway_not_a_module:SPACE [gpu]\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def test_missing_extra_is_one_line_with_the_install_command(third_party):
    assert extras.missing_packages("gpu", "faraway_spaces") == ["no-such-package-zz>=1"]
    assert extras.installed("cpu", "faraway_spaces")
    with pytest.raises(extras.MissingExtra) as e:
        extras.require("gpu", "the faraway solver", "faraway_spaces")
    assert str(e.value) == "the faraway solver needs the gpu extra: pip install 'faraway_spaces[gpu]'"


def test_a_space_that_needs_a_missing_extra_is_listed_not_imported(third_party):
    entry = {e.name: e for e in space_catalogue()}["faraway"]
    assert not entry.available and entry.needs_extra == "gpu" and entry.distribution == "faraway_spaces"
    with pytest.raises(extras.MissingExtra, match="space faraway needs the gpu extra"):
        get_space("faraway")


def discover(*args, env=None):
    return subprocess.run([sys.executable, "-m", "discover.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=env)


def test_the_cli_lists_and_refuses_such_a_space_in_one_line(third_party):
    import os
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(third_party), str(ROOT)])}
    listed = {s["name"]: s for s in json.loads(discover("spaces", "--json", env=env).stdout)}
    assert listed["faraway"]["available"] is False and listed["faraway"]["needs_extra"] == "gpu"
    assert listed["cfr_variants"]["available"] is True and listed["cfr_variants"]["needs_extra"] is None
    proc = discover("eval", "seeds/cfr_variants/cfr.py", "--space", "faraway", env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "discover: error: space faraway needs the gpu extra: pip install 'faraway_spaces[gpu]'"]


def test_options_are_read_as_toml_values():
    from discover.cli import CliError, parse_options
    assert parse_options(["total_timesteps=20000", "lr=2.5e-4", "backend=numpy", "flag=true", 'name="a b"']) == {
        "total_timesteps": 20000, "lr": 2.5e-4, "backend": "numpy", "flag": True, "name": "a b"}
    with pytest.raises(CliError, match="KEY=VALUE"):
        parse_options(["no_equals_sign"])
