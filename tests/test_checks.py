"""Static checks (discover.checks) and evolve-block helpers (discover.program)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from discover.checks import CheckResult, expected_signatures, load_candidate, static_check
from discover.program import code_hash, join_evolve_block, normalized_code, split_evolve_block
from discover.space import EVOLVE_END, EVOLVE_START, Space
from search_spaces.cfr_variants import SPACE

SEEDS_DIR = Path(__file__).resolve().parents[1] / "seeds" / "cfr_variants"
CFR_PLUS = (SEEDS_DIR / "cfr_plus.py").read_text()
RULES = ("init_state", "update_regret", "derive_policy", "update_average")


class ToySpace(Space):
    name = "toy_cfr"
    required_functions = RULES
    seeds_dir = SEEDS_DIR


def with_line_in_update_regret(line: str, source: str = CFR_PLUS) -> str:
    """CFR+ with ``line`` as the first statement of update_regret."""
    anchor = "def update_regret(cum_regret, inst_regret, t, state, xp):\n"
    assert anchor in source
    return source.replace(anchor, anchor + "    " + line + "\n")


# ---------------------------------------------------------------------------------------
# discover.program

def test_split_and_join_round_trip_on_every_seed():
    for path in sorted(SEEDS_DIR.glob("*.py")):
        source = path.read_text()
        prefix, block, suffix = split_evolve_block(source)
        assert prefix + block + suffix == source
        assert join_evolve_block(prefix, block, suffix) == source
        assert prefix.rstrip().endswith(EVOLVE_START)
        assert suffix.startswith(EVOLVE_END)
        assert "def update_regret" in block and EVOLVE_START not in block


def test_source_without_markers_is_all_block():
    source = "def f(x):\n    return x\n"
    assert split_evolve_block(source) == ("", source, "")


@pytest.mark.parametrize("source", [
    f"{EVOLVE_START}\nx = 1\n",                                   # start only
    f"x = 1\n{EVOLVE_END}\n",                                     # end only
    f"{EVOLVE_END}\nx = 1\n{EVOLVE_START}\n",                     # reversed
    f"{EVOLVE_START}\n{EVOLVE_START}\nx = 1\n{EVOLVE_END}\n",     # twice
])
def test_malformed_markers_raise(source):
    with pytest.raises(ValueError, match="EVOLVE-BLOCK"):
        split_evolve_block(source)


def test_join_adds_the_newline_that_keeps_the_end_marker_on_its_own_line():
    assert join_evolve_block("# EVOLVE-BLOCK-START\n", "x = 1", "# EVOLVE-BLOCK-END\n") == \
        "# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n"


def test_code_hash_ignores_trailing_whitespace_only():
    noisy = "\n".join(line + "   " for line in CFR_PLUS.splitlines()) + "\n\n\n"
    assert code_hash(noisy) == code_hash(CFR_PLUS)
    assert code_hash(CFR_PLUS) == hashlib.sha256(CFR_PLUS.rstrip("\n").encode()).hexdigest()
    assert code_hash(CFR_PLUS.replace("0.0), state", "0.5), state")) != code_hash(CFR_PLUS)
    assert code_hash("  x = 1\n") != code_hash("x = 1\n")  # leading whitespace is code


def test_normalized_code_ignores_layout_comments_and_docstrings_but_not_code():
    prefix, block, suffix = split_evolve_block(CFR_PLUS)
    reformatted = block.replace("def init_state(num_infosets, num_actions, xp):\n",
                                "def init_state(num_infosets,num_actions,xp):  # none\n"
                                "    '''No state.'''\n")
    reformatted = reformatted.replace("\n\n\n", "\n\n# a comment\n\n")
    other = prefix.replace("CFR+", "CFR plus") + reformatted + suffix
    assert other != CFR_PLUS
    assert normalized_code(other) == normalized_code(CFR_PLUS)
    assert normalized_code(CFR_PLUS.replace("t * reach", "t * t * reach")) != normalized_code(CFR_PLUS)
    assert normalized_code(f"{EVOLVE_START}\ndef f(:\n{EVOLVE_END}\n") == "def f(:"


# ---------------------------------------------------------------------------------------
# static_check: accepted programs

@pytest.mark.parametrize("space", [SPACE, ToySpace()], ids=["cfr_variants", "toy"])
def test_every_seed_passes(space):
    seeds = space.seeds()
    assert len(seeds) >= 7
    for name, source in seeds.items():
        assert static_check(source, space) == CheckResult(True), name


@pytest.mark.parametrize("line", [
    "import math",
    "import numpy as np",
    "import jax.numpy as jnp",
    "from functools import partial",
    "from jax import lax",
    "scale = getattr(xp, 'float64', float)",
    "ok = hasattr(xp, 'maximum')",
    "eps = math.sqrt(1e-12) if False else 1e-6",
])
def test_harmless_code_passes(line):
    source = with_line_in_update_regret(line)
    assert static_check(source, SPACE).ok, static_check(source, SPACE).reason


def test_extra_parameters_with_defaults_are_accepted():
    source = CFR_PLUS.replace("def update_regret(cum_regret, inst_regret, t, state, xp):",
                              "def update_regret(cum_regret, inst_regret, t, state, xp, eps=0.0, *, scale=1.0):")
    assert static_check(source, SPACE).ok


# ---------------------------------------------------------------------------------------
# static_check: rejected programs, each with a reason naming the problem

@pytest.mark.parametrize("line, expected", [
    ("import os", "'os'"),
    ("import subprocess", "'subprocess'"),
    ("import socket", "'socket'"),
    ("import ctypes", "'ctypes'"),
    ("import importlib", "'importlib'"),
    ("import builtins", "'builtins'"),
    ("import sys", "'sys'"),
    ("from os import path", "'os'"),
    ("import numpy.ctypeslib", "'ctypeslib'"),
    ("from numpy import load", "'load'"),
    ("from numpy import *", "import *"),
    ("from . import helpers", "relative imports"),
    ("import numpy as __np", "'__np'"),
    ("m = __import__('os')", "'__import__'"),
    ("x = eval('1 + 1')", "'eval'"),
    ("exec('x = 1')", "'exec'"),
    ("f = open('/etc/passwd')", "'open'"),
    ("c = compile('1', 'f', 'eval')", "'compile'"),
    ("g = globals()", "'globals'"),
    ("l = locals()", "'locals'"),
    ("breakpoint()", "'breakpoint'"),
    ("setattr(xp, 'maximum', min)", "'setattr'"),
    ("k = getattr(xp, '__class__')", "'__class__'"),
    ("k = getattr(xp, 'mini' + 'mum')", "literal attribute name"),
    ("g = getattr", "'getattr'"),
    ("k = xp.__class__", "'__class__'"),
    ("k = (lambda: 0).__globals__", "'__globals__'"),
    ("b = __builtins__", "'__builtins__'"),
    ("a = xp.load('weights.npy')", "'load'"),
    ("xp.save('out.npy', cum_regret)", "'save'"),
    ("cum_regret.tofile('out.bin')", "'tofile'"),
    ("k = xp.ctypeslib", "'ctypeslib'"),
    ("frame = (x for x in ()).gi_frame", "'gi_frame'"),
    ("global COUNTER", "global"),
])
def test_forbidden_constructs_are_rejected_with_a_clear_reason(line, expected):
    source = with_line_in_update_regret(line)
    result = static_check(source, SPACE)
    assert not result.ok
    assert expected in result.reason
    assert result.reason.startswith("line ")


def test_dunder_definitions_are_rejected():
    source = CFR_PLUS.replace("# EVOLVE-BLOCK-START\n",
                              "# EVOLVE-BLOCK-START\ndef __getattr__(name):\n    return None\n\n\n")
    result = static_check(source, SPACE)
    assert not result.ok and "'__getattr__'" in result.reason


def test_syntax_error_is_reported_with_its_line():
    source = CFR_PLUS.replace("return {}", "return {")
    result = static_check(source, SPACE)
    assert not result.ok and result.reason.startswith("syntax error at line")


def test_malformed_markers_are_reported():
    result = static_check(CFR_PLUS.replace("# EVOLVE-BLOCK-END", ""), SPACE)
    assert not result.ok and "markers" in result.reason


def test_missing_required_function_is_named():
    source = CFR_PLUS.replace("def update_average(", "def update_averages(")
    result = static_check(source, SPACE)
    assert not result.ok and "'update_average'" in result.reason and "not defined" in result.reason


def test_required_function_bound_otherwise_is_rejected():
    source = CFR_PLUS + "\nupdate_regret = lambda cum_regret, inst_regret, t, state, xp: (cum_regret, state)\n"
    result = static_check(source, SPACE)
    assert not result.ok and "plain 'def'" in result.reason


def test_wrong_number_of_parameters_is_rejected():
    source = CFR_PLUS.replace("def derive_policy(cum_regret, inst_regret, legal, t, state, xp):",
                              "def derive_policy(cum_regret, legal, t, state, xp):")
    result = static_check(source, SPACE)
    assert not result.ok
    assert "'derive_policy' must accept 6 positional parameters" in result.reason


def test_required_keyword_only_parameter_is_rejected():
    source = CFR_PLUS.replace("def update_regret(cum_regret, inst_regret, t, state, xp):",
                              "def update_regret(cum_regret, inst_regret, t, state, xp, *, eps):")
    assert not static_check(source, SPACE).ok


def test_signatures_come_from_the_seeds_or_the_space():
    derived = expected_signatures(ToySpace())
    assert derived["derive_policy"] == ("cum_regret", "inst_regret", "legal", "t", "state", "xp")
    assert derived["init_state"] == ("num_infosets", "num_actions", "xp")

    class Declared(ToySpace):
        signatures = {"update_regret": "def update_regret(a: Array[I, A], b: float) -> Array[I, A]"}
    result = static_check(CFR_PLUS, Declared())
    assert not result.ok and "2 positional parameters (a, b)" in result.reason


def test_seeds_that_disagree_on_a_signature_are_a_clear_error(tmp_path):
    (tmp_path / "a.py").write_text("def f(x):\n    return x\n")
    (tmp_path / "b.py").write_text("def f(x, y):\n    return x\n")

    class Disagreeing(Space):
        name = "disagreeing"
        required_functions = ("f",)
        seeds_dir = tmp_path
    with pytest.raises(ValueError, match="seeds disagree"):
        static_check("def f(x):\n    return x\n", Disagreeing())


def test_space_may_widen_the_allowed_modules():
    source = with_line_in_update_regret("import optax")
    assert not static_check(source, SPACE).ok

    class Wider(ToySpace):
        allowed_modules = ("math", "numpy", "jax", "functools", "optax")
    assert static_check(source, Wider()).ok


def test_without_a_space_only_syntax_and_safety_are_checked():
    assert static_check("x = 1\n").ok
    assert not static_check("import os\n").ok


# ---------------------------------------------------------------------------------------
# load_candidate

def test_load_candidate_returns_a_working_namespace():
    import numpy as np
    namespace = load_candidate(CFR_PLUS)
    regret, state = namespace["update_regret"](np.array([[1.0, -2.0]]), np.array([[0.5, 0.5]]), 1.0, {}, np)
    np.testing.assert_array_equal(regret, [[1.5, 0.0]])
    assert state == {}
    assert namespace["__name__"] == "discover_candidate"
    assert load_candidate(CFR_PLUS) is not namespace  # a fresh namespace each time
