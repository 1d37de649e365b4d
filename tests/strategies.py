"""Hypothesis strategies for random IR modules and random spaces."""

from __future__ import annotations

from hypothesis import strategies as st

from dpcdsl.lang import ir

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: s not in {"cell", "let", "import", "repeat", "as", "return", "one_of",
                        "earlier", "true", "false", "depth", "for", "in"})


def values(depth: int = 2) -> st.SearchStrategy:
    atoms = st.one_of(
        st.integers(0, 10_000).map(lambda v: ir.Int(value=v)),
        st.floats(0, 100, allow_nan=False, allow_infinity=False).map(
            lambda v: ir.Float(value=v)),
        st.booleans().map(lambda v: ir.Bool(value=v)),
        NAMES.map(lambda v: ir.Name(id=v)),
        NAMES.map(lambda v: ir.ChannelsOf(tensor=ir.Name(id=v))),
    )
    if depth == 0:
        return atoms
    inner = values(depth - 1)
    return st.one_of(
        atoms,
        st.lists(inner, min_size=1, max_size=3).map(lambda i: ir.Tuple(items=tuple(i))),
        st.lists(inner, max_size=3).map(lambda i: ir.SetLit(items=tuple(i))),
        st.builds(lambda op, a, b: ir.Arith(op=op, left=a, right=b),
                  st.sampled_from(sorted(ir.ARITH)), inner, inner),
    )


def exprs(depth: int = 2) -> st.SearchStrategy:
    leaf = st.one_of(NAMES.map(lambda v: ir.Name(id=v)), st.just(ir.Earlier()), values(1))
    if depth == 0:
        return leaf
    inner = exprs(depth - 1)
    kwargs = st.lists(st.builds(ir.Kwarg, name=NAMES, value=values(1)), max_size=2)
    call = st.builds(lambda f, a, k: ir.Call(func=f, args=tuple(a), kwargs=tuple(k)),
                     NAMES, st.lists(inner, max_size=2), kwargs)
    one_of = st.builds(
        lambda o, a: ir.OneOf(options=tuple(o), apply=None if a is None else tuple(a)),
        st.lists(inner, max_size=3), st.none() | st.lists(inner, max_size=2))
    return st.one_of(leaf, call, one_of)


def stmts(depth: int = 1) -> st.SearchStrategy:
    simple = st.one_of(
        st.builds(lambda n, v: ir.Let(name=n, value=v), NAMES, values()),
        st.builds(lambda n, v: ir.Assign(target=n, value=v), NAMES, exprs()),
        st.builds(lambda v: ir.Return(value=v), exprs()),
    )
    if depth == 0:
        return simple
    return st.one_of(simple, st.builds(
        lambda c, n, b: ir.Repeat(count=c, name=n, body=tuple(b)),
        st.integers(0, 9), NAMES, st.lists(stmts(depth - 1), max_size=3)), st.builds(
        lambda n, i, b: ir.For(names=tuple(n), items=tuple(i), body=tuple(b)),
        st.lists(NAMES, min_size=1, max_size=3), st.lists(exprs(1), min_size=1, max_size=3),
        st.lists(stmts(depth - 1), max_size=3)))


def params() -> st.SearchStrategy:
    return st.builds(lambda n, d: ir.Param(name=n, default=d), NAMES, st.none() | values(1))


cells = st.builds(
    lambda n, p, d, b: ir.CellDef(name=n, params=tuple(p), depth=d, body=tuple(b)),
    NAMES, st.lists(params(), max_size=3), st.none() | st.integers(0, 9),
    st.lists(stmts(), max_size=4))

modules = st.builds(
    lambda items: ir.Module(items=tuple(items)),
    st.lists(st.one_of(cells, st.builds(lambda n, v: ir.Let(name=n, value=v), NAMES,
                                        values()),
                       st.builds(lambda p: ir.Import(path=p),
                                 st.from_regex(r"[a-z./_]{1,12}", fullmatch=True))),
             max_size=4))

# A small paper-like space with random sizes: B branches, rate and grid sets.
paper_like = st.builds(
    lambda b, rates, grids: (
        f"let rates = {{{', '.join(map(str, sorted(rates)))}}}\n"
        f"let grids = {{{', '.join(map(str, sorted(grids)))}}}\n"
        f"cell s(x, channels = 8) {{\n"
        f"  repeat {b} as b {{\n"
        f"    b = one_of(conv(kernel = 1), sepconv(kernel = 3, rate = (rates, rates)), "
        f"pool(grid = (grids, grids)))(one_of(x, earlier))\n"
        f"  }}\n"
        f"  return conv(dropout(concat(b), p = 0.1), kernel = 1)\n}}\n"),
    st.integers(1, 5), st.sets(st.integers(1, 24), min_size=1, max_size=4),
    st.sets(st.integers(1, 8), min_size=1, max_size=3))


_OPS = ["conv(kernel = {kernel})", "sepconv(rate = {pair})", "pool(grid = {pair})",
        "relu()", "sigmoid()", "dropout(p = {p})", "conv(kernel = 1, act = {act})",
        "conv(kernel = 1, channels = {width})"]


@st.composite
def small_spaces(draw: st.DrawFn) -> str:
    """``.dpc`` text of a small random space: sets, applied and plain one_of, repeats
    over `earlier`, loops carrying a name down their items, a helper cell given a set,
    and a bounded recursive cell. Counting must equal the number of distinct
    architectures that enumeration finds."""

    def op() -> str:
        template = draw(st.sampled_from(_OPS))
        return template.format(
            kernel=draw(st.sampled_from(["1", "3", "{1, 3}", "{0, 1} * 2 + 1",
                                         "7 // 2", "{1, 3} - 0"])),
            pair=draw(st.sampled_from(["1", "2", "{1, 2}", "(1, {1, 2})", "({1, 2}, {1, 3})"])),
            p=draw(st.sampled_from(["0.1", "{0.1, 0.2}"])),
            act=draw(st.sampled_from(["relu", "{relu, gelu}"])),
            # a width written out is not the cells' default (4): conv(kernel = 1) and
            # conv(kernel = 1, channels = 4) would be one architecture written twice
            width=draw(st.sampled_from(["x.channels", "{x.channels, 5}", "x.channels // 2 + 1",
                                        "{x.channels, x.channels * 2}"])))

    def applied(x: str) -> str:
        ops = draw(st.lists(st.builds(op), min_size=1, max_size=3))
        return f"one_of({', '.join(ops)})({x})"

    lines = []
    helper = draw(st.sampled_from(["none", "param", "recursive"]))
    if helper == "param":
        lines.append("cell h(x, k = 1) {\n  return one_of(conv(x, kernel = 2 * k - 1), "
                     "sepconv(x, kernel = 3, rate = {1, 2} * k))\n}")
    elif helper == "recursive":
        depth = draw(st.integers(0, 2))
        lines.append(f"cell t(x) depth {depth} {{\n  return one_of({applied('x')}, t(t(x)), "
                     "sum(t(x), x))\n}")
    body, names = [], ["x"]
    for i in range(draw(st.integers(0, 2))):
        src = draw(st.sampled_from(names))
        kind = draw(st.sampled_from(["applied", "plain", "call"]))
        if kind == "applied":
            expr = applied(src)
        elif kind == "plain":
            expr = f"one_of({src}, {applied(src)})"
        elif helper == "param":
            expr = f"h({src}, k = {draw(st.sampled_from(['1', '2', '{1, 2}', '{2, 3} - 1']))})"
        elif helper == "recursive":
            expr = f"t({src})"
        else:
            expr = f"relu({src})"
        body.append(f"  a{i} = {expr}")
        names.append(f"a{i}")
    tail = names[-1]
    if draw(st.booleans()):  # a loop down the names, carrying c or not, a choice per item
        items = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))
        kernels = [draw(st.sampled_from(["1", "3", "{1, 3}"])) for _ in items]
        source = "one_of(c, s)" if items[0] != tail and draw(st.booleans()) else "s"
        pairs = ", ".join(f"({s}, {k})" for s, k in zip(items, kernels))
        body.append(f"  c = {tail}\n  for s, k in ({pairs}{',' * (len(items) == 1)}) {{\n"
                    f"    c = one_of(conv(kernel = k), sigmoid())({source})\n  }}")
        tail = draw(st.sampled_from(["c", "c0"]))
    if draw(st.booleans()):
        n = draw(st.integers(1, 3))
        body.append(f"  repeat {n} as b {{\n    b = {applied(f'one_of({tail}, earlier)')}\n  }}")
        tail = "concat(b)"
    body.append(f"  return {tail}")
    lines.append("cell m(x, channels = 4) {\n" + "\n".join(body) + "\n}")
    return "\n\n".join(lines) + "\n"
