"""The isolated executor against hostile candidates (``tests/hostile/``), on a toy space.

Every hostile candidate must be stopped with the right status and reason, and the same
executor must go on evaluating a good candidate correctly afterwards. The expected values
are computed by hand from the toy space's rule, score = f(x) + seed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from discover.isolation import sandbox
from discover.isolation.executor import ExecutorShutDown, Job, LocalExecutor, evaluate_isolated
from discover.space import CRASHED, ERROR, FORBIDDEN, MEMORY, OK, TIMEOUT, Space
from discover.spaces import UnknownSpace, available_spaces, get_space, register_space, unregister_space
from tests import toy_space

TOY = f"{toy_space.__name__}:SPACE"
HOSTILE = Path(__file__).parent / "hostile"
GOOD = "def f(x):\n    return x * x\n"
SLEEPY = "import time\n\n\ndef f(x):\n    time.sleep(x)\n    return x\n"


def hostile(name: str) -> str:
    return (HOSTILE / f"{name}.py").read_text()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def executor(cache_dir):
    with LocalExecutor(workers=2, time_limit=3.0, memory_limit_mb=512, cache_dirs=[cache_dir]) as ex:
        yield ex


def run(ex, source: str, task: str = "3", **kw):
    return ex.submit(Job(TOY, source, task, **kw)).result(timeout=60)


def assert_still_works(ex) -> None:
    r = run(ex, GOOD, "4", seed=1)
    assert r.status == OK, r
    assert r.metrics["score"] == 17.0


@pytest.mark.parametrize("name, status, reason", [
    ("infinite_loop", TIMEOUT, "wall-time limit of 3 s"),
    ("allocate_10gb", MEMORY, "out of memory (limit 512 MiB)"),
    ("kill_self", CRASHED, "killed by SIGKILL"),
    ("exit_3", CRASHED, "exited with code 3"),
    ("segfault", CRASHED, "Fatal Python error: Segmentation fault"),
    ("os_system", FORBIDDEN, "os.system"),
    ("subprocess_run", FORBIDDEN, "import: subprocess"),
    ("socket_connect", FORBIDDEN, "import: socket"),
    ("catch_and_continue", FORBIDDEN, "os.system"),
    ("frame_walk", FORBIDDEN, "sys._getframe"),
    ("rebind_harness", FORBIDDEN, "discover.space.aggregate_score"),
    ("raises", ERROR, "ValueError: candidate says no"),
])
def test_hostile_candidate_is_stopped_and_the_run_goes_on(executor, name, status, reason):
    r = run(executor, hostile(name))
    assert r.status == status, r
    assert reason in r.error
    assert_still_works(executor)


def test_error_keeps_the_end_of_the_traceback(executor):
    r = run(executor, hostile("raises"))
    lines = r.error.splitlines()
    assert lines[-1] == "ValueError: candidate says no"
    assert 'File "<candidate>", line 2, in f' in r.error


def test_writing_outside_the_job_directory_is_forbidden_and_nothing_is_written(executor):
    outside = Path("/tmp/outside.txt")
    outside.unlink(missing_ok=True)
    r = run(executor, hostile("write_outside"))
    assert r.status == FORBIDDEN
    assert "/tmp/outside.txt" in r.error
    assert not outside.exists()
    assert_still_works(executor)


def test_only_the_harness_may_write_the_cache(executor, cache_dir):
    r = run(executor, hostile("write_cache"))
    assert r.status == FORBIDDEN
    assert not (cache_dir / "poisoned.txt").exists()
    # The same write made by the space's own code (as an evaluator caching arrays does).
    r = run(executor, GOOD, "5", options={"harness_write": True})
    assert r.status == OK, r
    assert (cache_dir / "toy-5.txt").read_text() == "25.0"


def test_candidate_may_write_in_its_own_directory(executor):
    r = run(executor, hostile("scratch_files"))
    assert r.status == OK, r
    assert r.metrics["score"] == 3.0


def test_many_jobs_over_two_workers_all_complete_correctly(executor):
    futures = [executor.submit(Job(TOY, GOOD, str(x), seed=s, tag=(x, s))) for x in range(10) for s in (0, 1)]
    for fut in futures:
        x, s = fut.job.tag
        r = fut.result(timeout=60)
        assert r.status == OK, r
        assert r.metrics["score"] == x * x + s
    pids = {f.result().metrics["pid"] for f in futures}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_two_workers_run_jobs_at_the_same_time(executor):
    assert_still_works(executor)              # both workers warm
    start = time.monotonic()
    futures = [executor.submit(Job(TOY, SLEEPY, "1.0")) for _ in range(2)]
    assert all(f.result(timeout=60).status == OK for f in futures)
    assert time.monotonic() - start < 1.8


def test_worker_is_replaced_when_a_candidate_leaves_a_thread_running(cache_dir):
    with LocalExecutor(workers=1, time_limit=5.0, memory_limit_mb=512, cache_dirs=[cache_dir]) as ex:
        first = run(ex, GOOD)
        second = run(ex, GOOD)
        assert first.metrics["pid"] == second.metrics["pid"]          # a warm worker is reused
        r = run(ex, hostile("thread_left_running"))
        assert r.status == OK
        after = run(ex, GOOD)
        assert after.status == OK and after.metrics["pid"] != r.metrics["pid"]
        assert ex.worker_sandbox().keys() == {"network", "filesystem", "syscalls"}


def test_a_job_finds_nothing_that_an_earlier_job_left(cache_dir):
    look = ("import os\nimport tempfile\n\n\ndef f(x):\n"
            "    return float(os.path.exists(os.path.join('..', 'left_behind.txt'))\n"
            "                 or os.path.exists(os.path.join(tempfile.gettempdir(), 'left_in_tmp.txt')))\n")
    with LocalExecutor(workers=1, time_limit=5.0, memory_limit_mb=512, cache_dirs=[cache_dir]) as ex:
        r = run(ex, hostile("leave_files"))
        assert r.status == OK and r.metrics["score"] == 1.0        # tempfile writes in the job's own directory
        after = run(ex, look)
        assert after.metrics["pid"] == r.metrics["pid"]            # same worker
        assert after.status == OK and after.metrics["score"] == 0.0


def test_evaluate_isolated(cache_dir):
    r = evaluate_isolated(Job(TOY, GOOD, "6", seed=2), time_limit=5, memory_limit_mb=512, cache_dirs=[cache_dir])
    assert r.status == OK and r.metrics["score"] == 38.0
    r = evaluate_isolated(Job(TOY, hostile("exit_3"), "1"), time_limit=5, memory_limit_mb=512,
                          cache_dirs=[cache_dir])
    assert r.status == CRASHED and "code 3" in r.error
    r = evaluate_isolated(Job(TOY, hostile("infinite_loop"), "1"), time_limit=1, memory_limit_mb=512,
                          cache_dirs=[cache_dir])
    assert r.status == TIMEOUT and r.wall_time == 1


def test_workers_get_no_credentials(monkeypatch, cache_dir):
    monkeypatch.setenv("DISCOVER_TEST_API_KEY", "secret")
    src = "import os\n\n\ndef f(x):\n    return float(sum('API_KEY' in k for k in os.environ))\n"
    r = evaluate_isolated(Job(TOY, src, "0"), time_limit=5, memory_limit_mb=512, cache_dirs=[cache_dir])
    assert r.status == OK and r.metrics["score"] == 0.0


def test_shutdown_without_waiting_stops_running_and_cancels_queued_jobs(cache_dir):
    ex = LocalExecutor(workers=1, time_limit=30.0, memory_limit_mb=512, cache_dirs=[cache_dir])
    running = ex.submit(Job(TOY, hostile("infinite_loop"), "1"))
    queued = ex.submit(Job(TOY, GOOD, "1"))
    # Wait until the worker has taken the first job (a loaded machine starts workers slowly).
    deadline = time.monotonic() + 60
    while not running.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.running()
    time.sleep(0.3)
    start = time.monotonic()
    ex.shutdown(wait=False)
    assert time.monotonic() - start < 5
    with pytest.raises(ExecutorShutDown):
        running.result(timeout=5)
    assert queued.cancelled()
    with pytest.raises(RuntimeError, match="shut down"):
        ex.submit(Job(TOY, GOOD, "1"))


def test_bad_input_is_refused_in_the_callers_process(executor):
    with pytest.raises(UnknownSpace, match="unknown space 'no_such_space'; available: "):
        executor.submit(Job("no_such_space", GOOD, "1"))
    with pytest.raises(ValueError, match="Job.source must be a str"):
        Job(TOY, b"def f(x): return x", "1")
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        LocalExecutor(workers=0)
    with pytest.raises(ValueError, match="time_limit must be a positive number"):
        LocalExecutor(workers=1, time_limit=0)


# ----------------------------------------------------------------------------- spaces
def test_space_lookup_by_reference_registration_and_unknown_name():
    assert get_space(TOY) is toy_space.SPACE

    class Registered(Space):
        name = "registered_for_test"

    space = Registered()
    register_space(space)
    try:
        assert get_space("registered_for_test") is space
        assert available_spaces()["registered_for_test"] is space
    finally:
        unregister_space("registered_for_test")
    with pytest.raises(UnknownSpace) as e:
        get_space("registered_for_test")
    assert str(e.value).startswith("unknown space 'registered_for_test'; available: ")
    with pytest.raises(UnknownSpace, match="has no attribute 'NOPE'"):
        get_space(f"{toy_space.__name__}:NOPE")
    with pytest.raises(TypeError, match="not a discover.space.Space"):
        get_space(f"{toy_space.__name__}:ToySpace")


# ----------------------------------------------------------------------------- sandbox helpers
def test_sandbox_path_rules():
    assert sandbox.normalize_path("../x", "/a/b") == "/a/x"
    assert sandbox.normalize_path("/a/./b//c/..", "/") == "/a/b"
    assert sandbox.normalize_path("/../../etc", "/") == "/etc"
    assert sandbox.is_candidate_file("<candidate>", "/scratch")
    assert sandbox.is_candidate_file("/scratch/job-1/mod.py", "/scratch")
    assert not sandbox.is_candidate_file("/scratchy/mod.py", "/scratch")
    assert not sandbox.is_candidate_file("/usr/lib/python3.11/os.py", "/scratch")
    assert not sandbox.is_candidate_file("<frozen posixpath>", "/scratch")
    assert sandbox.clean_environment({"PATH": "/bin", "OPENAI_API_KEY": "k", "HF_TOKEN": "t"}) == {"PATH": "/bin"}
