"""Per-evaluation time limits derived from the space's reference program, timed by trusted
code once per machine; a hanging candidate costs a bounded multiple of honest work."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from discover.engine import limits
from discover.isolation.executor import Job
from discover.engine.limits import FACTOR, FALLBACK_S, FLOOR_S, TimeLimits
from tests.fit_space import FitSpace

ROOT = Path(__file__).resolve().parents[1]


class TimedFitSpace(FitSpace):
    """The fit space with a reference seed that takes ``delay`` seconds per evaluation,
    counting the evaluations made in this process."""

    reference_seed = "parabola"
    delay = 0.0
    calls = 0

    def evaluate(self, source, task, seed=0, **options):
        type(self).calls += 1
        time.sleep(self.delay)
        return super().evaluate(source, task, seed, **options)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCOVER_CACHE", str(tmp_path / "cache"))
    TimedFitSpace.calls = 0


def test_the_limit_is_ten_times_the_reference_with_a_floor():
    slow = TimedFitSpace()
    slow.delay = 2.5
    limit = TimeLimits().for_task(slow, "left", {})
    assert FACTOR * 2.5 <= limit < FACTOR * 2.5 + FACTOR * 0.5       # 10 × the measured time
    fast = TimedFitSpace()
    assert TimeLimits().for_task(fast, "right", {}) == FLOOR_S        # milliseconds: the floor


def test_a_timing_is_paid_once_per_machine_and_keyed_by_options(tmp_path):
    space = TimedFitSpace()
    TimeLimits().for_task(space, "left", {"iterations": 5})
    assert TimedFitSpace.calls == 1
    TimeLimits().for_task(space, "left", {"iterations": 5})           # a new process would read the file
    assert TimedFitSpace.calls == 1
    TimeLimits().for_task(space, "left", {"iterations": 6})
    assert TimedFitSpace.calls == 2
    files = list(limits.timings_dir().glob("*.json"))
    assert len(files) == 2 and limits.timings_dir() == (tmp_path / "timings").resolve()
    key = json.loads(files[0].read_text())["key"]
    assert key["space"] == space.name and key["machine"]["cpus"] == os.cpu_count()


def test_an_explicit_limit_and_spaces_without_a_reference():
    assert TimeLimits(7.5).for_task(TimedFitSpace(), "left", {}) == 7.5
    assert TimedFitSpace.calls == 0
    assert TimeLimits().for_task(FitSpace(), "left", {}) == FALLBACK_S
    from discover.engine import probe
    assert TimeLimits()(Job(space="cfr_variants", source="", task="", kind="probe")) == probe.TIME_LIMIT
    with pytest.raises(ValueError, match="Job.kind"):
        Job(space="cfr_variants", source="", task="", kind="guess")
    with pytest.raises(ValueError):
        TimeLimits(0)


HANG = '''
def init_state(num_infosets, num_actions, xp):
    return {}


def update_regret(cum_regret, inst_regret, t, state, xp):
    while True:
        pass


def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
    return legal / xp.sum(legal, axis=1, keepdims=True), state


def update_average(cum_policy, policy, reach, t, state, xp):
    return cum_policy + reach[:, None] * policy, state
'''


def test_an_infinite_loop_times_out_within_30_seconds_of_eval_starting(tmp_path):
    program = tmp_path / "hang.py"
    program.write_text(HANG)
    env = {**os.environ, "DISCOVER_CACHE": str(tmp_path / "cache")}   # nothing timed or cached before
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "discover.cli", "eval", str(program), "--space", "cfr_variants",
                           "--game", "kuhn_poker", "--iterations", "10", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
    elapsed = time.monotonic() - start
    result = json.loads(proc.stdout.strip().splitlines()[-1])["kuhn_poker"]
    assert result["status"] == "timeout", result
    assert f"{FLOOR_S:g} s" in result["error"]
    assert elapsed < 30, elapsed
