import random
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from dpcdsl import limits
from dpcdsl.errors import DpcError
from dpcdsl.lang.space import Space
from dpcdsl.lang.syntax import parse
from tests.conftest import EXAMPLES
from tests.strategies import paper_like, small_spaces

PAPER = Space.from_file(EXAMPLES / "dpc_paper.dpc")

# Branch 0 has 1 + 2 + 1 = 4 options, branch 1 doubles that with its input choice,
# and one_of's options have unequal sizes (1, 2 and 1), so per-choice uniform draws
# would not be uniform over architectures.
SMALL = """
cell small(x, channels = 8) {
  repeat 2 as b {
    b = one_of(conv(kernel = 1), sepconv(kernel = 3, rate = {1, 2}), pool(grid = 1))(one_of(x, earlier))
  }
  return concat(b)
}
"""


def test_paper_space_count():
    assert PAPER.count() == 418_414_128_120 == 120 * 81**5


@pytest.mark.slow
def test_uniform_sampling_chi_square():
    space = Space.from_text(SMALL)
    cells = list(space.enumerate())
    assert len(cells) == space.count() == 4 * 8
    assert len({c.hash for c in cells}) == len(cells)
    rng = random.Random(7)
    n = 16_000
    seen = Counter(space.sample(rng)[0].hash for _ in range(n))
    assert set(seen) == {c.hash for c in cells}
    observed = [seen[c.hash] for c in cells]
    stat, p = chisquare(observed)
    assert p > 0.001, (stat, p, observed)
    # and the naive per-choice draw would fail this test: op 1 is twice as likely
    ops = Counter(c.nodes[0].op for c in (space.sample(rng)[0] for _ in range(4000)))
    assert ops["sepconv"] / 4000 == pytest.approx(0.5, abs=0.04)


def test_enumerate_matches_count_for_recursive_space():
    text = ("cell t(x) depth 2 { return one_of(sepconv(x, rate = {1, 2}), t(t(x)), "
            "sum(t(x), x)) }\n")
    space = Space.from_text(text)
    cells = list(space.enumerate())
    # c(0) = 2; c(d) = 2 + c(d-1)^2 + c(d-1)
    c0 = 2
    c1 = 2 + c0 * c0 + c0
    c2 = 2 + c1 * c1 + c1
    assert space.count() == c2 == len(cells) == len({c.hash for c in cells})
    for cell in cells[:: max(1, len(cells) // 20)]:
        assert space.decode(space.encode(cell)) == cell


@pytest.mark.slow
def test_huge_recursive_count_is_exact_and_fast(monkeypatch):
    # its architectures are trees of about 8,000 nodes: over the default limit, which a
    # program may raise (counting never builds them)
    monkeypatch.setattr(limits, "MAX_NODES", 10_000)
    text = ("cell t(x) depth 12 { return one_of(sepconv(x, rate = {1, 2, 3}), "
            "sum(t(x), t(x))) }\n")
    start = time.perf_counter()
    n = Space.from_text(text).count()
    elapsed = time.perf_counter() - start
    c = 3
    for _ in range(12):
        c = 3 + c * c
    assert n == c and n > 10**100
    assert elapsed < 10  # generous: the benchmark tracks the real figure


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paper_like, st.integers(0, 2**32))
@pytest.mark.slow
def test_samples_lie_in_space_and_round_trip(text, seed):
    space = Space.from_text(text)
    cell, decisions = space.sample(seed)
    assert space.decode(decisions) == cell
    assert space.decode(space.encode(cell)) == cell
    assert space.contains(cell)
    # the printed sample is ordinary .dpc text that parses back to the same cell
    again = Space.from_text(cell.canonical_text()).concrete()
    assert again == cell and again.hash == cell.hash


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32))
def test_paper_samples_round_trip(seed):
    cell, decisions = PAPER.sample(seed)
    assert PAPER.encode(cell) == decisions
    assert Space.from_text(cell.canonical_text()).concrete() == cell


def test_mutation_changes_one_decision():
    rng = random.Random(3)
    cell, d = PAPER.sample(rng)
    for _ in range(200):
        new_cell, new = PAPER.mutate(d, rng)
        assert new_cell != cell
        assert PAPER.decode(new) == new_cell
        same_paths = set(d) & set(new)
        changed = [p for p in same_paths if d[p] != new[p]]
        assert len(changed) == 1, changed
        cell, d = new_cell, new


def test_decode_errors_are_clear():
    _, d = PAPER.sample(1)
    with pytest.raises(DpcError, match="out of range"):
        PAPER.decode({**d, "b0.op": 9})
    with pytest.raises(DpcError, match="unknown choice point 'b9.op'"):
        PAPER.decode({**d, "b9.op": 0})
    missing = dict(d)
    del missing["b3.op"]
    with pytest.raises(DpcError, match="no decision for the choice point 'b3.op'"):
        PAPER.decode(missing)


def test_encode_rejects_a_cell_outside_the_space():
    aspp = Space.from_file(EXAMPLES / "aspp.dpc").concrete()
    with pytest.raises(DpcError, match="is not in the space"):
        PAPER.encode(aspp)


def test_concrete_refuses_a_space():
    with pytest.raises(DpcError, match="search space of 418414128120"):
        PAPER.concrete()


def test_sub_cells_inline_with_prefixed_names():
    text = ("cell blk(x, r = 2) { y = sepconv(x, rate = r)\n return conv(y) }\n"
            "cell head(x) { a = blk(x)\n b = blk(a, r = 4)\n return concat(a, b) }\n")
    cell = Space.from_text(text).concrete()
    assert [n.name for n in cell.nodes] == ["a_y", "a_out", "b_y", "b_out", "out"]
    assert cell.node("b_y").attr("rate") == (4, 4)


def test_generated_name_clash_is_an_error():
    text = "cell c(x) {\n out_conv = conv(x)\n return sum(conv(x), out_conv) }\n"
    with pytest.raises(DpcError, match="a name made up for the nodes of the return"):  # by check
        Space.from_text(text).concrete()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.dpc")), ids=lambda p: p.name)
def test_every_example_samples_and_round_trips(path):
    space = Space.from_file(path)
    cell, d = space.sample(0)
    assert space.decode(d) == cell
    assert space.encode(cell) is not None
    assert parse(cell.canonical_text()) is not None


def test_uniform_draws_are_randrange_draws():
    """The sampler's inlined draw is random.randrange's method, so seeds keep their
    meaning: the same seed gives the same draws."""
    from dpcdsl.lang._expand import Ones, Uniform

    reference, ours = random.Random(11), Uniform(random.Random(11))
    for n in [2, 3, 7, 64, 81, 1000] * 50:  # choices among values
        assert ours.choose("p", Ones([1] * n), None) == reference.randrange(n)
    for n in [5, 2**40 + 3, 10**30] * 50:  # options weighted by their sub-space sizes
        half = n // 2
        assert ours.choose("p", [half, n - half], None) == int(reference.randrange(n) >= half)


def test_sampled_cells_are_ordinary_models():
    from dpcdsl.lang import ir

    space = Space.from_file(EXAMPLES / "dpc_paper.dpc")
    cell, _ = space.sample(3)
    again = ir.Cell.model_validate(cell.model_dump())
    assert again == cell and hash(again) == hash(cell) and again.hash == cell.hash
    assert repr(again) == repr(cell)
    renamed = cell.model_copy(update={"name": "other"})
    assert renamed.name == "other" and cell.name == "dpc_paper"
    assert cell.model_fields_set == set(ir.Cell.model_fields)


def test_a_set_passed_to_a_cell_counts_once_and_samples_uniformly():
    from collections import Counter

    text = ("cell b(x, k = 1) { return conv(x, kernel = k) }\n"
            "cell a(x) { return one_of(b(x, k = {1, 3}), sepconv(x, kernel = 3)) }")
    space = Space.from_text(text, "a")
    assert space.count() == 3 == len(list(space.enumerate()))
    draws = Counter(space.sample(seed)[0].hash for seed in range(3000))
    assert len(draws) == 3 and all(800 < n < 1200 for n in draws.values())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.filter_too_much])
@given(small_spaces())
@pytest.mark.slow
def test_count_equals_the_distinct_architectures_enumeration_finds(text):
    """Over random small spaces (sets, one_of, repeats, cell calls, recursion): the
    exact count is the number of architectures, each found once, none twice."""
    from hypothesis import assume

    from dpcdsl.lang.checker import check
    from dpcdsl.lang.program import load_text

    program = load_text(text)
    assume(not check(program))
    space = Space(program, "m")
    n = space.count()
    assume(n <= 3000)
    cells = list(space.enumerate())
    assert len(cells) == n
    assert len({c.hash for c in cells}) == n, text


def test_sampling_the_cell_call_reproducer_is_uniform_by_chi_square():
    text = ("cell b(x, k = 1) { return conv(x, kernel = k) }\n"
            "cell a(x) { return one_of(b(x, k = {1, 3}), sepconv(x, kernel = 3)) }")
    space = Space.from_text(text, "a")
    cells = list(space.enumerate())
    rng = random.Random(11)
    seen = Counter(space.sample(rng)[0].hash for _ in range(9000))
    stat, p = chisquare([seen[c.hash] for c in cells])
    assert len(cells) == 3 and p > 0.001, (stat, p, seen)


def test_the_benchmarks_recursive_space_loads_within_the_limits():
    """bench_dsl counts a recursive space: it must stay one that the limits accept."""
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("bench_dsl", ROOT / "benchmarks" /
                                                  "bench_dsl.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert len(str(Space.from_text(bench.HUGE).count())) > 500
