"""Bad input gets one clear line on stderr and a non-zero exit."""

import subprocess
import sys

import pytest


def discover(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "discover.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def one_error_line(proc):
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("discover: error: ")
    return lines[0]


def test_unknown_space(tmp_path):
    line = one_error_line(discover("run", "--space", "nope", "--db", f"sqlite:///{tmp_path}/d.db"))
    assert "unknown space 'nope'" in line and "cfr_variants" in line


def test_file_that_is_not_a_database(tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("this is not a database\n" * 100)
    line = one_error_line(discover("top", "--db", f"sqlite:///{bogus}"))
    assert "not a database" in line


def test_unreachable_postgres():
    line = one_error_line(discover("top", "--db", "postgresql+psycopg://nobody:pw@127.0.0.1:1/nothing"))
    assert "cannot" in line.lower() or "unreachable" in line.lower()


def test_malformed_config(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("budget = [\n")
    line = one_error_line(discover("run", "--config", str(cfg), "--db", f"sqlite:///{tmp_path}/d.db"))
    assert "not valid TOML" in line


def test_unknown_config_key(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("budgett = 3\n")
    line = one_error_line(discover("run", "--config", str(cfg), "--db", f"sqlite:///{tmp_path}/d.db"))
    assert "unknown setting" in line and "budgett" in line


def test_resume_with_no_run(tmp_path):
    line = one_error_line(discover("run", "--resume", "--db", f"sqlite:///{tmp_path}/d.db"))
    assert "no run to resume" in line


def test_eval_missing_file(tmp_path):
    line = one_error_line(discover("eval", str(tmp_path / "missing.py"), "--space", "cfr_variants"))
    assert "cannot read" in line


@pytest.mark.parametrize("command", ["run", "spaces", "top", "eval"])
def test_every_command_has_help_with_an_example(command):
    proc = discover(command, "--help")
    assert proc.returncode == 0
    assert "example:" in proc.stdout and f"discover {command}" in proc.stdout
