"""The device stored with each evaluation is the one it computed on, in one format."""

import types

import jax
import pytest

from discover.isolation.executor import Job, LocalExecutor
from discover.space import CPU, describe_device
from discover.store import Store
from search_spaces.cfr_variants import SPACE as CFR


def test_the_format_names_cpu_and_cuda_devices():
    assert describe_device(jax.devices("cpu")[0]) == "cpu"
    h100 = types.SimpleNamespace(platform="gpu", id=0, device_kind="NVIDIA H100 80GB HBM3")
    assert describe_device(h100) == "cuda:0 NVIDIA H100 80GB HBM3"
    assert describe_device(types.SimpleNamespace(platform="tpu", id=3, device_kind="TPU v5 lite")) == "tpu:3 TPU v5 lite"


@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_a_cfr_evaluation_reports_where_it_ran_and_the_store_keeps_it(tmp_path, backend):
    cpu = describe_device(jax.devices("cpu")[0])
    source = CFR.seeds()["cfr_plus"]
    with LocalExecutor(workers=1, time_limit=120) as ex:
        result = ex.submit(Job(space="cfr_variants", source=source, task="kuhn_poker",
                               options={"iterations": 10, "backend": backend})).result()
    assert result.ok and result.metrics["backend"] == backend
    assert result.device == (CPU if backend == "numpy" else cpu)
    store = Store.open(f"sqlite:///{tmp_path / 'd.db'}")
    run = store.create_run("d", "cfr_variants", {}, 0, 1, "seed", {})
    program = store.add_program(run.id, source, 0, "seed")
    store.record_evaluation(program.id, "kuhn_poker", 0, "train", result)
    assert store.evaluations(program.id)[0].device == result.device
