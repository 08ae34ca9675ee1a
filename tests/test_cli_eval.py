"""`discover eval` runs a file through the same isolated executor as a run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def discover(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "discover.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


@pytest.mark.parametrize("hostile, status", [("os_system.py", "forbidden"), ("socket_connect.py", "forbidden"),
                                             ("write_outside.py", "forbidden"), ("kill_self.py", "crashed"),
                                             ("infinite_loop.py", "timeout")])
def test_a_hostile_file_is_contained_and_reported(hostile, status):
    proc = discover("eval", f"tests/hostile/{hostile}", "--space", "tests.toy_space:SPACE", "--game", "1",
                    "--time-limit", "5", "--json")
    assert proc.returncode == 1
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["1"]["status"] == status, result


def test_eval_json_matches_openspiel_cfr_plus_on_kuhn():
    import pyspiel
    proc = discover("eval", "seeds/cfr_variants/cfr_plus.py", "--space", "cfr_variants", "--game", "kuhn_poker",
                    "--iterations", "100", "--json")
    assert proc.returncode == 0, proc.stderr
    curve = json.loads(proc.stdout.strip().splitlines()[-1])["kuhn_poker"]
    assert curve[-1][0] == 100
    game = pyspiel.load_game("kuhn_poker")
    solver = pyspiel.CFRPlusSolver(game)
    for _ in range(100):
        solver.evaluate_and_update_policy()
    expected = pyspiel.exploitability(game, solver.average_policy())
    assert curve[-1][1] == pytest.approx(expected, rel=1e-9)
