"""Parsing model answers and applying them inside the evolve block (discover.mutators.diffs).

The parent is the CFR+ seed; expected programs are built in each test by plain string
edits of the seed text, and edited rules are run on NumPy arrays against their formulas.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from discover.mutators.diffs import (DIFF, REWRITE, DiffError, NoCodeError, SearchReplace, apply_answer,
                                     apply_search_replace, parse_answer)
from discover.program import split_evolve_block

SEED = (Path(__file__).resolve().parents[1] / "seeds" / "cfr_variants" / "cfr_plus.py").read_text()
REGRET_LINE = "    return xp.maximum(cum_regret + inst_regret, 0.0), state\n"
DISCOUNTED = "    return xp.maximum(0.9 * cum_regret + inst_regret, 0.0), state\n"


def sr(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def namespace(source: str) -> dict:
    ns: dict = {}
    exec(compile(source, "<candidate>", "exec"), ns)
    return ns


def test_exact_search_replace_changes_only_the_block_and_runs():
    answer = parse_answer("IDEA: discount old regret by 0.9\n" + sr(REGRET_LINE, DISCOUNTED))
    assert answer.kind == DIFF and answer.idea == "discount old regret by 0.9"
    new = apply_answer(SEED, answer)
    assert new == SEED.replace(REGRET_LINE, DISCOUNTED)
    p0, _, s0 = split_evolve_block(SEED)
    p1, _, s1 = split_evolve_block(new)
    assert (p0, s0) == (p1, s1)
    rng = np.random.default_rng(0)
    cum, inst = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    out, state = namespace(new)["update_regret"](cum, inst, 1.0, {}, np)
    np.testing.assert_array_equal(out, np.maximum(0.9 * cum + inst, 0.0))
    assert state == {}


def test_whitespace_tolerant_match_reindents_the_replacement():
    # The model dropped the indentation and doubled a space; the replacement must come
    # back indented like the matched lines.
    search = "return  xp.maximum(cum_regret + inst_regret, 0.0), state\n"
    replace = "decayed = 0.5 * cum_regret\nreturn xp.maximum(decayed + inst_regret, 0.0), state\n"
    new = apply_answer(SEED, parse_answer(sr(search, replace)))
    assert new == SEED.replace(REGRET_LINE, "    decayed = 0.5 * cum_regret\n"
                                            "    return xp.maximum(decayed + inst_regret, 0.0), state\n")
    cum = np.array([[1.0, -2.0]])
    out, _ = namespace(new)["update_regret"](cum, np.array([[0.25, 0.5]]), 1.0, {}, np)
    np.testing.assert_array_equal(out, [[0.75, 0.0]])


def test_blocks_apply_in_order_and_a_fragment_of_a_line_does_not_match_exactly():
    first = sr(REGRET_LINE, DISCOUNTED)
    second = sr("    return cum_policy + t * reach[:, None] * policy, state\n",
                "    return cum_policy + t * t * reach[:, None] * policy, state\n")
    new = apply_answer(SEED, parse_answer(first + "\nand then\n" + second))
    expected = SEED.replace(REGRET_LINE, DISCOUNTED).replace("t * reach[:, None]", "t * t * reach[:, None]")
    assert new == expected


def test_blocks_inside_a_python_fence_are_a_diff_not_a_rewrite():
    answer = parse_answer("```python\n" + sr(REGRET_LINE, DISCOUNTED) + "```\n")
    assert answer.kind == DIFF and len(answer.blocks) == 1


def test_deletion_with_an_empty_replace():
    search = "    safe_total = xp.where(total > 0.0, total, 1.0)\n"
    answer = parse_answer(sr(search, ""))
    # Deleting the line leaves `safe_total` undefined: still valid Python, so it applies.
    assert apply_answer(SEED, answer) == SEED.replace(search, "")


def test_ambiguous_search_is_an_error():
    twice = ("# EVOLVE-BLOCK-START\ndef f(x):\n    y = x + 1\n    return y\n\n\n"
             "def g(x):\n    y = x + 1\n    return 2 * y\n# EVOLVE-BLOCK-END\n")
    with pytest.raises(DiffError, match="matches 2 places"):
        apply_search_replace(twice, [SearchReplace("    y = x + 1\n", "    y = x + 2\n")])
    with pytest.raises(DiffError, match="matches 2 places"):  # the tolerant pass counts too
        apply_search_replace(twice, [SearchReplace("y = x  + 1\n", "y = x + 2\n")])
    assert apply_search_replace(twice, [SearchReplace("    y = x + 1\n    return y\n", "    return x\n")]) == \
        twice.replace("    y = x + 1\n    return y\n", "    return x\n")


def test_search_outside_the_block_is_an_error():
    docstring_line = "1. Cumulative regrets are floored at zero after every update (regret matching+).\n"
    assert docstring_line in SEED
    with pytest.raises(DiffError, match="outside the evolve block"):
        apply_answer(SEED, parse_answer(sr(docstring_line, "1. Changed.\n")))
    with pytest.raises(DiffError, match="marker"):
        apply_answer(SEED, parse_answer(sr("# EVOLVE-BLOCK-END\n", "")))


def test_unmatched_search_names_the_closest_line():
    with pytest.raises(DiffError, match=r"not in it \(closest: 'return xp.maximum\(cum_regret \+ inst_regret, 0.0\), state'\)"):
        apply_answer(SEED, parse_answer(sr("    return xp.maximum(cum_regret + inst_regret, 1.0), state\n",
                                           DISCOUNTED)))


def test_empty_search_unchanged_and_unparsable_results_are_errors():
    with pytest.raises(DiffError, match="empty SEARCH"):
        apply_answer(SEED, parse_answer(sr("", DISCOUNTED)))
    with pytest.raises(DiffError, match="unchanged"):
        apply_answer(SEED, parse_answer(sr(REGRET_LINE, REGRET_LINE)))
    with pytest.raises(DiffError, match=r"does not parse: .*line \d+"):
        apply_answer(SEED, parse_answer(sr(REGRET_LINE, "    return xp.maximum(cum_regret +, 0.0), state\n")))


def test_incomplete_block_is_a_diff_error_not_prose():
    text = "<<<<<<< SEARCH\n" + REGRET_LINE + "=======\n" + DISCOUNTED  # no REPLACE line
    with pytest.raises(DiffError, match="incomplete") as info:
        parse_answer(text)
    assert not isinstance(info.value, NoCodeError)


def test_prose_only_is_no_code():
    with pytest.raises(NoCodeError):
        parse_answer("I would discount the regrets, which usually helps on poker games.")


def _block(source: str) -> str:
    return split_evolve_block(source)[1]


def test_full_rewrite_replaces_the_block():
    new_block = _block(SEED).replace("t * reach", "t ** 2 * reach")
    answer = parse_answer("IDEA: quadratic averaging\nHere it is:\n```python\n" + new_block + "```\n")
    assert answer.kind == REWRITE and answer.idea == "quadratic averaging"
    new = apply_answer(SEED, answer)
    assert new == SEED.replace("t * reach", "t ** 2 * reach")
    ns = namespace(new)
    out, _ = ns["update_average"](np.zeros((1, 2)), np.array([[0.5, 0.5]]), np.array([2.0]), 3.0, {}, np)
    np.testing.assert_array_equal(out, [[9.0, 9.0]])


def test_rewrite_of_the_whole_file_keeps_the_fixed_part():
    # The model rewrote the docstring too: only its block is taken.
    whole = SEED.replace("CFR+ — regret", "My new algorithm — regret").replace("t * reach", "t ** 2 * reach")
    answer = parse_answer("```python\nshort = 1\n```\nFull file:\n```python\n" + whole + "```\n")
    new = apply_answer(SEED, answer)
    assert new == SEED.replace("t * reach", "t ** 2 * reach")


def test_rewrite_prefers_the_longest_fence_and_rejects_an_empty_block():
    block = _block(SEED).replace("0.0)", "1e-12)")
    answer = parse_answer("```python\nx = 1\n```\n```python\n" + block + "```\n")
    assert apply_answer(SEED, answer) == SEED.replace("0.0)", "1e-12)")
    with pytest.raises(DiffError, match="empty"):
        apply_answer(SEED, parse_answer("```python\n\n```\n"))


def test_a_program_without_an_evolve_block_is_a_value_error():
    with pytest.raises(ValueError, match="no evolve block"):
        apply_search_replace("def f():\n    return 1\n", [SearchReplace("    return 1\n", "    return 2\n")])
