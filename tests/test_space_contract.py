"""The contract every registered space keeps, checked the same way for each: its seeds
define the functions it asks for, cite their paper and pass the static check; its doc names
the functions; its probe is a deterministic behavioural fingerprint that ignores names and
formatting and tells its seeds apart; and a
candidate that lacks a function is invalid with a reason that names it, before any work.

Per-space files keep what is particular to one space: parity with references and golden
values."""

from __future__ import annotations

import ast
import re

import numpy as np
import pytest

from discover.checks import static_check
from discover.space import EVOLVE_END, EVOLVE_START
from discover.spaces import space_catalogue

SPACES = [e.space for e in space_catalogue() if e.space is not None and e.space.train_tasks]


def by_space(f):
    return pytest.mark.parametrize("space", SPACES, ids=[s.name for s in SPACES])(f)


def namespace(source: str) -> dict:
    ns: dict = {"__name__": "candidate"}
    exec(compile(source, "<candidate>", "exec"), ns)
    return ns


class _Rename(ast.NodeTransformer):
    """Renames every argument of every top-level function (its uses in the body, and the
    keywords of calls to it) and every module-level constant, as a model rewriting a
    program in its own words would."""

    def __init__(self, tree: ast.Module):
        self.constants = {name: f"renamed_{i}" for i, name in enumerate(sorted(
            t.id for stmt in tree.body if isinstance(stmt, ast.Assign) for t in stmt.targets
            if isinstance(t, ast.Name) and t.id.isupper()))}
        self.params = {f.name: {a.arg: f"arg_{i}_{a.arg[::-1]}" for i, a in enumerate(f.args.args)}
                       for f in tree.body if isinstance(f, ast.FunctionDef)}
        self.args: dict[str, str] = {}

    def visit_FunctionDef(self, node):
        saved = self.args
        self.args = {**saved, **self.params.get(node.name, {})}
        for a in node.args.args:
            a.arg = self.args.get(a.arg, a.arg)
        self.generic_visit(node)
        self.args = saved
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in self.params:
            for k in node.keywords:
                k.arg = self.params[node.func.id].get(k.arg, k.arg)
        return node

    def visit_Name(self, node):
        node.id = self.args.get(node.id) or self.constants.get(node.id, node.id)
        return node


def renamed(source: str) -> str:
    tree = ast.parse(source)
    return ast.unparse(_Rename(tree).visit(tree))


@by_space
def test_seeds_define_the_functions_cite_a_paper_and_pass_the_static_check(space):
    seeds = space.seeds()
    assert seeds and space.required_functions
    for name, source in seeds.items():
        assert source.count(EVOLVE_START) == 1 and source.count(EVOLVE_END) == 1, name
        assert re.search(r"\b(19|20)\d\d\b", source.split(EVOLVE_START)[0]), f"{name} cites no paper"
        assert static_check(source, space).ok, name
        ns = namespace(source)
        assert all(callable(ns.get(f)) for f in space.required_functions), name
    assert space.reference_seed is None or space.reference_seed in seeds


@by_space
def test_the_doc_names_every_function_and_the_tasks_are_disjoint(space):
    for function in space.required_functions:
        assert f"def {function}(" in space.doc, function
    assert not set(space.train_tasks) & set(space.held_out_tasks)


@by_space
def test_the_probe_is_deterministic_ignores_names_and_tells_the_seeds_apart(space):
    prints = {}
    for name, source in sorted(space.seeds().items()):
        fp = np.asarray(space.probe(namespace(source)))
        assert fp.dtype == np.float64 and fp.ndim == 1 and np.all(np.isfinite(fp)), name
        np.testing.assert_array_equal(fp, space.probe(namespace(source)))
        # The same program with every argument and constant renamed and reformatted.
        other = renamed(source)
        assert other != source
        np.testing.assert_array_equal(fp, space.probe(namespace(other)), err_msg=name)
        prints[name] = fp
    assert len({fp.size for fp in prints.values()}) == 1
    names = sorted(prints)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(prints[a] - prints[b]).max() > 1e-3, (a, b)


@by_space
def test_a_missing_function_is_invalid_and_named_before_any_work(space):
    source = space.seeds()[space.reference_seed or sorted(space.seeds())[0]]
    missing = space.required_functions[-1]
    broken = source.replace(f"def {missing}(", f"def {missing}_renamed(")
    assert broken != source
    result = space.evaluate(broken, space.train_tasks[0])
    assert result.status == "invalid" and "score" not in result.metrics
    assert "does not define" in result.error and missing in result.error
    assert result.wall_time < 5.0


@by_space
def test_each_function_has_a_declared_typed_signature_the_seeds_and_the_prompt_follow(space):
    from discover.checks import declared_parameters
    from discover.mutators.base import MutationContext, Parent
    from discover.mutators.prompts import mutation_messages
    assert set(space.signatures) == set(space.required_functions)
    for name, text in space.signatures.items():
        params = declared_parameters(text)
        assert text.startswith(f"def {name}(") and "->" in text, text
        for seed, source in space.seeds().items():
            fn = next(f for f in ast.parse(source).body if isinstance(f, ast.FunctionDef) and f.name == name)
            assert len(fn.args.args) == len(params), (seed, name)
    seed = sorted(space.seeds())[0]
    context = MutationContext(space=space, parent=Parent(id=1, source=space.seeds()[seed], score=0.0, metrics={}),
                              inspirations=[], reflections=[], generation=1, rng_seed=0)
    prompt = "\n".join(m["content"] for m in mutation_messages(context))
    for text in space.signatures.values():
        assert text in prompt
