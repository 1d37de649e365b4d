"""Semantic checks. :func:`check` walks a whole program once and returns *every*
problem as a :class:`~dpcdsl.errors.Diagnostic`; it never stops at the first."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpcdsl import ir, limits
from dpcdsl._expand import Decider, Expander, Uniform, depth_first
from dpcdsl._node import IRNode
from dpcdsl.analysis import infer
from dpcdsl.errors import Diagnostic, DpcError, did_you_mean
from dpcdsl.ops import CELL_CHANNELS, OPS, RENAMED, REQUIRED, WORDS, Arg, OpSpec
from dpcdsl.program import Program, load, load_text

RECURSION_NEEDS_DEPTH = (
    "write the bound after the parameters, e.g. `cell {name}({params}) depth 4 {{`"
)
NO_BASE_CASE = (
    "give one_of(...) an option that does not call '{name}', so the recursion can stop"
)


@dataclass(frozen=True)
class Binding:
    kind: str  # "tensor" | "value" | "group" | "input"
    span: ir.Span | None = None
    value: Any = None  # the expr of a value binding
    default: bool = False  # a cell parameter's default value


@dataclass
class Scope:
    names: dict[str, Binding] = field(default_factory=dict)
    later: dict[str, ir.Span | None] = field(default_factory=dict)  # defined further down
    in_repeat: bool = False
    local: set[str] = field(default_factory=set)  # names this cell defines

    def child(self, in_repeat: bool | None = None) -> Scope:
        return Scope(dict(self.names), dict(self.later),
                     self.in_repeat if in_repeat is None else in_repeat, set(self.local))


class _OnlyOption(Decider):
    """The decider of a space of one architecture: the one option with a sub-space."""

    def choose(self, path: str, counts: list[int], probe: Any) -> int:
        return next(i for i, c in enumerate(counts) if c)


#: words of the language that read as names in some places but mean something else
#: (a keyword that starts an item, a built-in value), so no node may take them
RESERVED = ("one_of", "earlier", "true", "false", "import", "cell")

#: the strides a cell's input may read (``low @ 4``)
INPUT_STRIDES = (2, 4, 8, 16, 32)


class Checker:
    def __init__(self, program: Program, size: tuple[int, int] | None = None) -> None:
        self.p = program
        self.size = size
        self.diags: list[Diagnostic] = list(program.diagnostics)
        self._uses: dict[str, dict[str, list[tuple[str, Arg]]]] = {}

    def error(self, code: str, node: Any, message: str, hint: str | None = None,
              severity: str = "error") -> None:
        span = getattr(node, "span", None) or ir.Span(file=self.p.file)
        self.diags.append(Diagnostic(span=span, message=message, hint=hint, code=code,
                                     severity=severity))

    # ------------------------------------------------------------------ top level
    def run(self) -> list[Diagnostic]:
        with limits.stack_guard(self.p.module.span, f"{self.p.file}", self.p.sources):
            return self._run()

    def _run(self) -> list[Diagnostic]:
        top = Scope()
        for item in self.p.module.items:
            if isinstance(item, ir.Let):
                self.value_expr(item.value, top)
                top.names[item.name] = Binding("value", item.span, item.value)
        for name, let in self.p.lets.items():
            top.names.setdefault(name, Binding("value", let.span, let.value))
        for cell in self.p.cells.values():
            self.cell(cell, top)
        self.nesting()
        if not self.diags:  # the shapes of architectures, once the text itself is sound
            for cell, expander, n, inlined in self.roots():
                if inlined and any(d.severity == "error" for d in self.diags):
                    continue  # what fails in its caller is said there
                before = len(self.diags)
                try:  # a limit may stop the build of an architecture
                    (self.shapes if n == 1 else self.sampled_shapes)(expander, n)
                except DpcError as e:
                    self.diags.extend(e.diagnostics)
                if inlined:  # its callers check it where they use it: alone, a warning
                    self.diags[before:] = [_alone(cell, d) for d in self.diags[before:]]
        return sorted(set(self.diags), key=lambda d: (d.span.file != self.p.file, d.span.file,
                                                      d.span.line, d.span.column, d.message))

    def nesting(self) -> None:
        """Cells inlined inside cells, a recursive one counting its depth bound, nest at
        most :data:`dpcdsl.limits.MAX_CELL_NESTING` deep: each level is a level of the
        walks that count and build."""
        levels: dict[str, int] = {}

        def level(name: str, path: tuple[str, ...]) -> int:
            if name in levels:
                return levels[name]
            cell = self.p.cells[name]
            inner = [level(c.func, (*path, name)) for c in _calls(cell.body)
                     if c.func in self.p.cells and c.func != name and c.func not in path]
            # a depth over its own limit is reported as such, and counted at the limit
            levels[name] = 1 + min(cell.depth or 0, limits.MAX_DEPTH) + max(inner, default=0)
            return levels[name]

        for cell in self.p.own_cells():
            n = level(cell.name, ())
            if n > limits.MAX_CELL_NESTING:
                self.error(limits.CODE, cell, f"cell '{cell.name}' nests cells {n} deep (calls "
                           f"inside calls, with depth bounds), over the limit of "
                           f"{limits.MAX_CELL_NESTING}",
                           hint="dpcdsl.limits.MAX_CELL_NESTING sets this limit")
                return

    def roots(self) -> list[tuple[ir.CellDef, Expander, int, bool]]:
        """The cells of the main file whose shapes are inferred, with their expander,
        count, and whether another cell of the file inlines them (its problems are
        errors where it is used; alone, as ``dpcc sample --cell`` draws it, they are
        warnings)."""
        cells = self.p.own_cells()
        inlined = {c.func for cell in cells for c in _calls_closure(cell, self.p)
                   if c.func != cell.name}  # a recursive cell still stands for itself
        out = []
        for cell in cells:
            expander = Expander(self.p, cell)
            try:
                n = expander.count()
            except DpcError as e:
                if cell.name not in inlined:
                    self.diags.extend(e.diagnostics)
                continue
            if n:
                out.append((cell, expander, n, cell.name in inlined))
        return sorted(out, key=lambda r: r[3])  # the cells that stand alone first

    def sampled_shapes(self, expander: Expander, n: int) -> None:
        """A space may hold architectures whose channels or sizes do not fit (a sum of
        branches of different widths): each one found in :data:`SHAPE_SAMPLES` uniform
        samples (or among all of a smaller space) is a warning at the node, with how many
        of them fail there. A search would record each such trial as failed."""
        flats: list[ir.Cell | Diagnostic]
        if n <= SHAPE_SAMPLES:
            flats = [c for c, _ in depth_first(expander, None)]
        else:  # SHAPE_SAMPLES of them, fewer when each is a lot of work (SHAPE_WORK)
            metered = _Metered(Uniform(random.Random(0)))
            flats, drawn, over_limit = [], 0, 0
            # a sample over the node limit costs the most of all: after two of them, the
            # work is spent
            while drawn < SHAPE_SAMPLES and (metered.work < SHAPE_WORK
                                             or (drawn < 8 and over_limit < 2)):
                drawn += 1
                try:
                    flats.append(expander.run(metered)[0])
                except DpcError as e:  # over a limit (too many nodes): this sample only
                    flats.append(e.diagnostics[0])
                    metered.work += limits.MAX_NODES
                    over_limit += 1
                    continue
                metered.work += len(expander.nodes)
        over = [f for f in flats if isinstance(f, Diagnostic)]
        if len(over) == len(flats):  # every one is over a limit: an error
            self.diags.append(over[0])
            return
        found: dict[tuple[Any, str], list[Any]] = {}
        failed = 0
        for flat in flats:
            problem = flat if isinstance(flat, Diagnostic) else \
                _fails_whatever_the_inputs(flat, self.size)
            if problem is not None:
                failed += 1
                found.setdefault((problem.span, problem.code), [problem, 0])[1] += 1
        if flats and failed == len(flats):  # nothing of it can be built: an error
            problem = max(found.values(), key=lambda f: f[1])[0]
            every = f"all {n} architectures" if n <= SHAPE_SAMPLES else \
                f"all {len(flats)} sampled architectures"
            self.diags.append(Diagnostic(
                span=problem.span, code=problem.code,
                message=f"{every} of this space fail, e.g. here: {problem.message}",
                hint=problem.hint or "give the options the same widths, or project them "
                "first"))
            return
        for problem, hits in sorted(found.values(), key=lambda f: -f[1])[:3]:
            share = f"{hits} of its {n} architectures" if n <= SHAPE_SAMPLES else \
                f"{hits} of {len(flats)} sampled architectures (about {100 * hits // len(flats)}%)"
            self.diags.append(Diagnostic(
                span=problem.span, severity="warning", code=problem.code,
                message=f"{share} fail here, e.g. {problem.message}",
                hint=problem.hint or "a search records such trials as failed; give the "
                "options the same widths, or project them first"))

    def shapes(self, expander: Expander, n: int = 1) -> None:
        """A cell that is one architecture is built and its tensors inferred (the op
        registry's ``out`` rules): a sum of unequal channels, or with ``size`` a pool
        grid larger than the map, is an error here, not at compile time. Input channels
        are unknown, so inference runs with two different guesses; only what fails
        the same way with both fails whatever the inputs are."""
        flat = expander.run(_OnlyOption())[0]
        problem = _fails_whatever_the_inputs(flat, self.size)
        if problem is not None:
            self.diags.append(problem)

    def cell(self, cell: ir.CellDef, top: Scope) -> None:
        scope = top.child()
        seen_default = False
        for prm in cell.params:
            if prm.name in scope.local:
                self.error("DPC203", prm, f"parameter '{prm.name}' is declared twice")
            scope.local.add(prm.name)
            if prm.stride is not None and prm.default is not None:
                self.error("DPC501", prm, f"'{prm.name}' has a default, so it is a parameter; "
                           "only a tensor input reads features at a stride",
                           hint=f"write `{prm.name} = ...` without `@`")
            elif prm.stride is not None and prm.stride not in INPUT_STRIDES:
                self.error("DPC501", prm, f"input '{prm.name}' @ {prm.stride}: a backbone "
                           "stride is one of " + ", ".join(map(str, INPUT_STRIDES)))
            if prm.default is None:
                if prm.name == "channels":
                    self.error("DPC501", prm, "'channels' is the cell's channel count, not a "
                               "tensor input", hint="give it a value (`channels = 256`), and "
                               "name the input otherwise")
                if seen_default:
                    self.error("DPC501", prm, f"formal input '{prm.name}' comes after a parameter "
                               "with a default", hint="list the tensor inputs first")
                scope.names[prm.name] = Binding("input", prm.span)
            else:
                seen_default = True
                self.value_expr(prm.default, top)
                scope.names[prm.name] = Binding("value", prm.span, prm.default, default=True)
        for prm in cell.options:  # `channels` has no use site of its own to check it
            if prm.name == "channels" and prm.default is not None \
                    and self.p.cells.get(cell.name) is cell:
                self.passed_value(ir.Kwarg(name=prm.name, value=prm.default, span=prm.span),
                                  top, cell.name)
        if not cell.inputs:
            self.error("DPC501", cell, f"cell '{cell.name}' has no tensor input",
                       hint=f"write e.g. `cell {cell.name}(x, ...)`")
        if cell.depth is not None and cell.depth > limits.MAX_DEPTH:
            self.error(limits.CODE, cell, f"depth {cell.depth} is over the limit of "
                       f"{limits.MAX_DEPTH}", hint="dpcdsl.limits.MAX_DEPTH sets this limit")
        self.recursion(cell)
        self.generated_names(cell)
        for s in _all_assigns(cell.body):
            scope.later.setdefault(s, None)
        self.block(cell.body, scope, cell, top_level=True)
        self.unread_choices(cell)

    def unread_choices(self, cell: ir.CellDef) -> None:
        """``a = one_of(x, b)`` picks which tensor ``a`` stands for and makes no node: in
        an architecture that does not read ``a`` (it is never read, or only inside
        options that architecture does not take) its options are one architecture,
        which count and the sampler still take once per option. Said as a warning."""
        body = list(cell.body)
        for k, s in enumerate(body):
            if not (isinstance(s, ir.Assign) and isinstance(s.value, ir.OneOf)
                    and s.value.apply is None
                    and sum(isinstance(o, ir.Name) for o in _flat_options(s.value)) >= 2):
                continue
            reads = [c for later in body[k + 1:] for c in _reads(later, s.target)]
            if all(reads):  # none, or each inside a one_of's option
                how = "never read" if not reads else "read only inside one_of options"
                self.error("DPC307", s, f"'{s.target}' chooses among names but is {how}: "
                           "where an architecture does not read it, its options are the "
                           "same architecture, counted and drawn once per option",
                           hint=f"read '{s.target}' outside a choice, or remove the choice",
                           severity="warning")

    def generated_names(self, cell: ir.CellDef) -> None:
        """A name written in the cell may not fall in the names the expander makes up for
        another statement: nested ops and inlined cells of ``y = ...`` are ``y_<op>``,
        ``y_<statement>``; the ``return`` is ``out``; a repeat's branch ``b2`` is ``b2``
        and what its body holds ``b2_<name>``. A clash would only show when a sample
        that makes both names is built."""
        owners: list[tuple[str, str, Any]] = []  # (prefix, what makes it, statement)
        written: list[tuple[str, Any]] = []
        for st in cell.body:
            if isinstance(st, ir.Assign):
                written.append((st.target, st))
                if self.owns_names(st.value):
                    owners.append((st.target + "_", f"'{st.target}'", st))
            elif isinstance(st, ir.Return):
                if not isinstance(st.value, ir.Name | ir.Earlier):
                    owners.append(("out", "the return", st))
            elif isinstance(st, ir.Repeat):
                written += [(t.target, t) for t in st.body if isinstance(t, ir.Assign)
                            and t.target != st.name]
                owners.append((st.name, f"repeat '{st.name}'", st))
        for name, st in written:
            for prefix, what, owner in owners:
                if owner is st or not name.startswith(prefix):
                    continue
                rest = name[len(prefix):]
                if prefix == "out" and rest and not rest.startswith("_"):
                    continue
                if isinstance(owner, ir.Repeat) and not rest[:1].isdigit():
                    continue
                self.error("DPC203", st, f"'{name}' is a name made up for the nodes of "
                           f"{what}, which would clash with it",
                           hint=f"rename '{name}': names of the form {prefix}... belong "
                                f"to {what}")
                break

    def owns_names(self, e: Any) -> bool:
        """Does the statement value ``e`` make names beside its own (``y_<op>``)?"""
        for node in e.walk():
            if isinstance(node, ir.Call) and (node.func in self.p.cells or any(
                    isinstance(c, ir.Call | ir.OneOf) for a in (*node.args, *node.kwargs)
                    for c in a.walk())):
                return True
            if isinstance(node, ir.OneOf) and any(isinstance(c, ir.Call) for a in
                                                  node.apply or () for c in a.walk()):
                return True
        return False

    def recursion(self, cell: ir.CellDef) -> None:
        calls = [c for c in _calls(cell.body) if c.func == cell.name]
        if calls and cell.depth is None:
            params = ", ".join(p.name for p in cell.inputs)
            self.error("DPC504",
                       calls[0], f"cell '{cell.name}' calls itself but has no depth bound",
                       hint=RECURSION_NEEDS_DEPTH.format(name=cell.name, params=params))
        if calls and not _can_stop(cell.body, cell.name):
            self.error("DPC504", cell, f"recursive cell '{cell.name}' has no base case: every way "
                       "through it calls itself again", hint=NO_BASE_CASE.format(name=cell.name))
        for c in _calls(cell.body):
            other = self.p.cells.get(c.func)
            if other is not None and other is not cell and \
                    any(d.func == cell.name for d in _calls_closure(other, self.p)):
                self.error("DPC504", c, f"cells '{cell.name}' and '{c.func}' call each other",
                           hint="only a cell calling itself (with a depth bound) may recurse")

    # ------------------------------------------------------------------ statements
    def block(self, body: tuple[Any, ...], scope: Scope, cell: ir.CellDef,
              top_level: bool = False, repeat_name: str | None = None) -> None:
        returns = [s for s in body if isinstance(s, ir.Return)]
        for s in body:
            if isinstance(s, ir.Let):
                self.define(s.name, s, scope)
                self.value_expr(s.value, scope)
                scope.names[s.name] = Binding("value", s.span, s.value)
            elif isinstance(s, ir.Assign):
                self.define(s.target, s, scope)
                self.tensor(s.value, scope, slot_is_stmt=True)
                scope.names[s.target] = Binding("tensor", s.span, s.value)
                scope.later.pop(s.target, None)
            elif isinstance(s, ir.Repeat):
                self.repeat(s, scope, cell)
            elif isinstance(s, ir.Return):
                if not top_level:
                    self.error("DPC502",
                               s, "`return` belongs at the end of a cell, not in a repeat",
                               hint=f"assign the branch instead: `{repeat_name} = ...`")
                self.tensor(s.value, scope, slot_is_stmt=True)
            else:  # a statement kind the checker has no rule for is a bug, not a pass
                raise TypeError(f"the checker has no rule for a {type(s).__name__} "
                                "statement")
        if top_level:
            if not returns:
                self.error("DPC502", cell, f"cell '{cell.name}' has no `return`",
                           hint="end the cell with `return <expression>`")
            elif len(returns) > 1 or body[-1] is not returns[0]:
                extra = returns[1] if len(returns) > 1 else body[body.index(returns[0]) + 1]
                self.error("DPC502", extra, "nothing may follow the `return` of a cell")

    def define(self, name: str, node: Any, scope: Scope) -> None:
        if name in scope.local:
            old = scope.names.get(name)
            where = f" (first at line {old.span.line})" if old and old.span else ""
            self.error("DPC203", node, f"'{name}' is defined twice{where}")
        scope.local.add(name)
        if name in OPS or name in WORDS or name in RESERVED:
            self.error("DPC204", node, f"'{name}' is a built-in name; pick another")
        elif name == "channels" and isinstance(node, ir.Assign | ir.Repeat):
            # every architecture's text declares the cell's width under this name
            self.error("DPC204", node, "'channels' is the cell's width (a parameter of "
                       "every cell, 256 unless given); name the node otherwise")

    def repeat(self, s: ir.Repeat, scope: Scope, cell: ir.CellDef) -> None:
        if s.count < 1:
            self.error("DPC503", s, "a repeat needs at least one branch")
        if s.count > limits.MAX_REPEAT:
            self.error(limits.CODE, s, f"repeat {s.count} is over the limit of "
                       f"{limits.MAX_REPEAT} branches",
                       hint="dpcdsl.limits.MAX_REPEAT sets this limit")
        branches = range(min(s.count, limits.MAX_REPEAT))
        self.define(s.name, s, scope)
        for i in branches:
            if f"{s.name}{i}" in scope.names:
                self.error("DPC203", s, f"branch name '{s.name}{i}' clashes with an existing name")
        inner = scope.child(in_repeat=True)
        inner.names.pop(s.name, None)
        inner.local.discard(s.name)
        assigns = [t for t in s.body if isinstance(t, ir.Assign) and t.target == s.name]
        if not assigns:
            self.error("DPC503", s, f"the repeat body never assigns its branch '{s.name}'",
                       hint=f"end the body with `{s.name} = ...`")
        elif s.body[-1] is not assigns[0] or len(assigns) > 1:
            self.error("DPC503", assigns[-1], f"assign the branch '{s.name}' once, as the last "
                       "statement of the repeat body")
        if any(isinstance(t, ir.Repeat) for t in s.body):
            self.error("DPC503", s, "repeats cannot nest", hint="move the inner repeat into a cell")
        self.block(s.body, inner, cell, repeat_name=s.name)
        scope.names[s.name] = Binding("group", s.span)
        for i in branches:
            scope.names[f"{s.name}{i}"] = Binding("tensor", s.span)
        scope.later.pop(s.name, None)

    # ------------------------------------------------------------------ tensors
    def tensor(self, e: Any, scope: Scope, *, variadic: bool = False,
               option: bool = False, slot_is_stmt: bool = False) -> None:
        """``e`` is in a place that needs a tensor."""
        if isinstance(e, ir.Name):
            b = scope.names.get(e.id)
            if b is None:
                self.undefined(e, scope, ("tensor", "input", "group"))
            elif b.kind == "value":
                self.error("DPC211", e, f"'{e.id}' is a value, but a tensor is needed here")
            elif b.kind == "group" and not variadic:
                self.error("DPC212",
                           e, f"'{e.id}' is a repeat of several branches; a single tensor "
                           "is needed here",
                           hint=f"use concat({e.id}) or sum({e.id}), or name one branch "
                                f"such as {e.id}0")
        elif isinstance(e, ir.Earlier):
            if not (scope.in_repeat and option):
                self.error("DPC214", e, "`earlier` is only meaningful as an option of one_of(...) "
                           "inside a repeat", hint="write e.g. one_of(x, earlier)")
        elif isinstance(e, ir.Call):
            self.call(e, scope)
        elif isinstance(e, ir.OneOf):
            self.one_of(e, scope)
        elif isinstance(e, ir.Kwarg):  # pragma: no cover - the builder splits kwargs
            self.error("DPC211", e, "unexpected keyword argument")
        else:
            self.error("DPC211", e, "a tensor is needed here, not a value",
                       hint="tensor arguments come first; values go in `key = value`")

    def undefined(self, e: ir.Name, scope: Scope, kinds: tuple[str, ...]) -> None:
        if e.id in scope.later:
            self.error("DPC202", e, f"'{e.id}' is used before it is defined",
                       hint="a node may only read names defined above it")
            return
        if e.id in self.p.cells:
            self.error("DPC205", e, f"'{e.id}' is a cell; call it: {e.id}(...)")
            return
        known = [n for n, b in scope.names.items() if b.kind in kinds]
        self.error("DPC201", e, f"undefined name '{e.id}'.{did_you_mean(e.id, known)}".rstrip("."))

    def one_of(self, e: ir.OneOf, scope: Scope) -> None:
        if not e.options:
            self.error("DPC306", e, "one_of() needs at least one option")
        for o in e.options:
            if e.apply is not None:
                if not isinstance(o, ir.Call):
                    self.error("DPC306", o, "an applied one_of(...)(x) chooses among operations: "
                               "each option must be a call such as conv(kernel = 1)")
                    continue
                self.call(o, scope, partial=True, applied=e.apply)
            else:
                self.tensor(o, scope, option=True)
        for a in e.apply or ():
            if isinstance(a, ir.Kwarg):
                self.error("DPC306", a, "pass keyword arguments to each option, not to the applied "
                           "one_of(...)(x)")
            else:
                self.tensor(a, scope)
        self.distinct_options(e, scope)

    def distinct_options(self, e: ir.OneOf, scope: Scope) -> None:
        """No two options of a one_of may make the same architecture: the space would
        count it twice and draw it twice as often as the others. Only options of one
        head can overlap, and calls of one op only where every value argument can take
        a common value, so candidates come from an index of one argument's values: near
        linear in the options, not pairwise."""
        heads: dict[Any, list[int]] = {}
        for i, o in enumerate(e.options):
            head: Any = o.func if isinstance(o, ir.Call) else type(o).__name__
            if isinstance(o, ir.Name):  # a name of a choice counts as a one_of
                real = _aliased(o, scope)
                head = "OneOf" if _chosen(real, scope) is not None else ("name", real.id)
            heads.setdefault(head, []).append(i)
        nested = heads.pop("OneOf", [])
        buckets: list[list[int]] = []
        for head, group in heads.items():
            buckets += self._alike(e.options, group, scope) if isinstance(head, str) \
                and isinstance(e.options[group[0]], ir.Call) else [group[:2]]
        n = len(e.options)
        work = len(nested) * n + sum(len(b) * (len(b) - 1) // 2 for b in buckets)
        if work > _OPTION_PAIRS:
            self.error(limits.CODE, e, f"this one_of has {n:,} options, too many alike to "
                       f"compare for duplicates ({work:,} comparisons, more than "
                       f"{_OPTION_PAIRS:,})",
                       hint="flatten nested one_of options, or give the options distinct "
                            "single values")
            return
        pairs = {(i, j) for b in buckets for k, j in enumerate(b) for i in b[:k]}
        pairs |= {(min(i, j), max(i, j)) for i in nested for j in range(n) if i != j}
        for i, j in sorted(pairs, key=lambda p: (p[1], p[0])):
            if self.overlap(e.options[i], e.options[j], scope):
                self.error("DPC306", e.options[j], f"options {i + 1} and {j + 1} of this "
                           "one_of can make the same architecture, which the space would "
                           "then count and draw twice",
                           hint="remove one, or make their values differ")
                return

    def _alike(self, options: tuple[Any, ...], group: list[int],
               scope: Scope) -> list[list[int]]:
        """Calls of one op (or cell) in ``group`` put in buckets by the values of the
        argument whose values split them best: only two in one bucket can overlap. One
        bucket of all when no argument's values are all known."""
        func = options[group[0]].func
        names = [a.name for a in OPS[func].value_args] if func in OPS else \
            [p.name for p in self.p.cells[func].options] if func in self.p.cells else []
        best, least = [group], len(group) ** 2
        for name in names if len(group) > 16 else ():
            index: dict[str, list[int]] = {}
            for i in group:
                values = self.arg_values(options[i], name, scope)
                if values is None:
                    break
                for v in values:
                    index.setdefault(v, []).append(i)
            else:
                work = sum(len(b) ** 2 for b in index.values())
                if work < least:
                    best, least = list(index.values()), work
        return best

    def overlap(self, a: Any, b: Any, scope: Scope) -> bool:
        """Can ``a`` and ``b`` (tensor expressions) build the same nodes?"""
        if isinstance(a, ir.OneOf) or isinstance(b, ir.OneOf):
            one, other = (a, b) if isinstance(a, ir.OneOf) else (b, a)
            return any(self.overlap(o, other, scope) for o in _applied(one))
        if isinstance(a, ir.Name) and isinstance(b, ir.Name):  # `y = x`: y is x
            a, b = _aliased(a, scope), _aliased(b, scope)
            if a.id == b.id:
                return True
            # `y = one_of(x, relu(x))`: y is x in some architectures
            for one, other in ((a, b), (b, a)):
                value = _chosen(one, scope)
                if value is not None and self.overlap(value, other, scope):
                    return True
            return False
        if isinstance(a, ir.Earlier) and isinstance(b, ir.Earlier):
            return True
        if not (isinstance(a, ir.Call) and isinstance(b, ir.Call)) or a.func != b.func \
                or len(a.args) != len(b.args):
            return False
        if not all(self.overlap(x, y, scope) for x, y in zip(a.args, b.args)):
            return False
        for name in {k.name for k in (*a.kwargs, *b.kwargs)}:
            arg = OPS[a.func].arg(name) if a.func in OPS else None
            if arg is not None and arg.kind == "tensor":
                ka, kb = a.kwarg(name), b.kwarg(name)
                if ka is not None and kb is not None and not self.overlap(ka.value, kb.value,
                                                                          scope):
                    return False
                continue
            va, vb = self.arg_values(a, name, scope), self.arg_values(b, name, scope)
            if va is not None and vb is not None and not va & vb:
                return False
        return True

    def arg_values(self, call: ir.Call, name: str, scope: Scope) -> set[str] | None:
        """The values a call's argument can take, as canonical text (None: unknown)."""
        kw = call.kwarg(name)
        arg = OPS[call.func].arg(name) if call.func in OPS else None
        if kw is None:
            if arg is not None:
                default = arg.default
            else:
                prm = next((p for p in self.p.cells[call.func].options if p.name == name),
                           None) if call.func in self.p.cells else None
                return None if prm is None or prm.default is None else self.arg_values(
                    call.model_copy(update={"kwargs": (ir.Kwarg(name=name, value=prm.default),)}),
                    name, scope)
            if default is REQUIRED:
                return None
            values: list[Any] = [default]
            if default is CELL_CHANNELS:  # the cell's width
                width = scope.names.get("channels")
                values = self.values(width.value, scope) if width is not None and \
                    width.kind == "value" else [256]
        else:
            values = self.values(kw.value, scope)
            if not values:
                return None
        kind = arg.kind if arg is not None else "any"
        return {repr(_normal(v, kind)) for v in values}

    def call(self, e: ir.Call, scope: Scope, partial: bool = False,
             applied: tuple[Any, ...] | None = None) -> None:
        n_inputs = len(e.args) + (len([a for a in applied if not isinstance(a, ir.Kwarg)])
                                  if applied is not None else 0)
        if e.func in OPS:
            spec = OPS[e.func]
            known: dict[str, Arg] = {a.name: a for a in spec.args}
            lo, hi = spec.min_inputs, spec.max_inputs
        elif e.func in self.p.cells:
            target = self.p.cells[e.func]
            known = {p.name: Arg(p.name, "any") for p in target.options}
            lo = hi = len(target.inputs)
        else:
            hint = did_you_mean(e.func, [*OPS, *self.p.cells])
            self.error("DPC301", _head(e), f"unknown op '{e.func}'.{hint}".rstrip("."),
                       hint=None if hint else "ops: " + ", ".join(OPS))
            for a in e.args:
                self.tensor(a, scope)
            return
        if partial and e.args:
            self.error("DPC306", e.args[0], "an option of an applied one_of takes no tensor "
                       "arguments; the one_of's own (...) supplies them",
                       hint=f"write {e.func}(...) with keyword arguments only")
        if n_inputs < lo or (hi is not None and n_inputs > hi):
            want = f"{lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo}-{hi}"
            self.error("DPC305",
                       e, f"'{e.func}' takes {want} tensor input{'s' if want != '1' else ''}, "
                       f"got {n_inputs}")
        variadic = e.func in OPS and OPS[e.func].max_inputs is None
        for a in e.args:
            self.tensor(a, scope, variadic=variadic)
        given = set()
        for kw in e.kwargs:
            if kw.name in given:
                self.error("DPC303", kw, f"argument '{kw.name}' is given twice")
            given.add(kw.name)
            arg = known.get(kw.name)
            if arg is None:
                renamed = RENAMED.get(kw.name) if "act" in known else None
                hint = "" if renamed else did_you_mean(kw.name, known)
                self.error("DPC302",
                           kw, f"'{e.func}' has no argument '{kw.name}'.{hint}".rstrip("."),
                           hint=f"it is now {renamed}" if renamed else None if hint else
                           ("arguments: " + ", ".join(known) if known else None))
            elif arg.kind == "tensor":
                self.tensor(kw.value, scope)
            elif arg.kind == "any":
                self.value_expr(kw.value, scope)
                if e.func in self.p.cells:  # as strict as the ops the cell passes it to
                    self.passed_value(kw, scope, e.func)
            else:
                self.typed_value(kw.value, scope, arg, e.func)
        if e.func in OPS:
            for arg in OPS[e.func].args:
                if arg.default is REQUIRED and arg.name not in given:
                    self.error("DPC304", e, f"'{e.func}' needs `{arg.name} = ...`")
            self.validate(e, scope, OPS[e.func])

    def passed_value(self, kw: ir.Kwarg, scope: Scope, cell: str) -> None:
        """A value passed to a cell's parameter meets the kind and checks of every op
        argument the cell (or a cell it calls) gives that parameter to."""
        for op, arg in self.param_uses(cell).get(kw.name, []):
            for v in self.values(kw.value, scope):
                problem = _kind_problem(arg, v)
                if problem:
                    self.error("DPC401", kw.value, f"{cell}({kw.name} = ...): {problem} "
                               f"(the cell passes it to {op}'s `{arg.name}`)")
                    return

    def param_uses(self, name: str) -> dict[str, list[tuple[str, Arg]]]:
        """For each parameter of the cell ``name``: the (op, argument) pairs it reaches,
        directly or through the cells it is passed on to."""
        if name in self._uses:
            return self._uses[name]
        self._uses[name] = {}  # a recursive cell sees what is known so far
        cell = self.p.cells[name]
        params = {p.name for p in cell.options}
        uses: dict[str, list[tuple[str, Arg]]] = {}
        if "channels" in params:  # the width of every conv that says no other
            uses["channels"] = [("every conv", OPS["conv"].arg("channels") or
                                 Arg("channels", "int"))]
        for c in _calls(cell.body):
            for kw in c.kwargs:
                if c.func in OPS:
                    arg = OPS[c.func].arg(kw.name)
                    if arg is None or arg.kind in ("tensor", "any"):
                        continue
                    element = Arg(arg.name, "int", check=arg.check) if arg.kind == "pair" \
                        else arg
                    parts = kw.value.items if isinstance(kw.value, ir.Tuple) else (kw.value,)
                    for part in parts:
                        if isinstance(part, ir.Name) and part.id in params:
                            uses.setdefault(part.id, []).append(
                                (c.func, element if part is not kw.value else arg))
                elif c.func in self.p.cells and isinstance(kw.value, ir.Name) \
                        and kw.value.id in params:
                    uses.setdefault(kw.value.id, []).extend(
                        self.param_uses(c.func).get(kw.name, []))
        self._uses[name] = uses
        return uses

    def validate(self, e: ir.Call, scope: Scope, spec: OpSpec) -> None:
        """The op's own checks across its arguments (its ``validate`` rule)."""
        if spec.validate is None:
            return
        values = {kw.name: self.values(kw.value, scope) for kw in e.kwargs
                  if getattr(spec.arg(kw.name), "kind", "tensor") != "tensor"}
        for problem in spec.validate(values, self.size):
            kw = e.kwarg(problem.arg) if problem.arg is not None else None
            self.error("DPC403", kw if kw is not None else e, problem.message, hint=problem.hint,
                       severity=problem.severity)

    # ------------------------------------------------------------------ values
    def resolve(self, e: Any, scope: Scope) -> Any:
        """Follow names to the value expression they stand for (or None)."""
        seen = set()
        while isinstance(e, ir.Name) and e.id not in WORDS:
            b = scope.names.get(e.id)
            if b is None or b.kind != "value" or e.id in seen:
                return None
            seen.add(e.id)
            e = b.value
        return e

    def values(self, e: Any, scope: Scope) -> list[Any]:
        """Every concrete value ``e`` can take (sets expanded); best effort."""
        e = self.resolve(e, scope) if isinstance(e, ir.Name) and e.id not in WORDS else e
        if isinstance(e, ir.Name):
            return [e.id]
        if isinstance(e, ir.Int | ir.Float | ir.Bool):
            return [e.value]
        if isinstance(e, ir.SetLit):
            return [v for i in e.items for v in self.values(i, scope)]
        if isinstance(e, ir.Tuple):
            return _tuples([self.values(item, scope) for item in e.items])
        return []

    def value_expr(self, e: Any, scope: Scope, in_set: bool = False) -> None:
        """``e`` is a value of no particular kind (a let or a cell parameter)."""
        if isinstance(e, ir.Name):
            if e.id in WORDS:
                return
            b = scope.names.get(e.id)
            if b is None:
                if e.id in scope.later:
                    self.error("DPC202", e, f"'{e.id}' is used before it is defined")
                else:
                    known = [n for n, b in scope.names.items() if b.kind == "value"]
                    hint = did_you_mean(e.id, [*known, *WORDS])
                    self.error("DPC201", e, f"undefined name '{e.id}'.{hint}".rstrip("."))
            elif b.kind != "value":
                self.error("DPC213", e, f"'{e.id}' is a tensor, but a value is needed here")
        elif isinstance(e, ir.SetLit):
            if in_set:
                self.error("DPC402", e, "sets cannot nest", hint="write one flat set of values")
            if not e.items:
                self.error("DPC402", e, "empty set: a choice needs at least one value")
            if len(e.items) > limits.MAX_SET:
                self.error(limits.CODE, e, f"a set of {len(e.items):,} values is over the "
                           f"limit of {limits.MAX_SET:,}",
                           hint="dpcdsl.limits.MAX_SET sets this limit")
                return
            for i in e.items:
                self.value_expr(i, scope, in_set=True)
            vals = [self.values(i, scope) for i in e.items]
            flat = [v for vs in vals for v in vs]
            if len(flat) != len(set(map(repr, flat))):
                self.error("DPC402", e, "a set lists the same value twice",
                           hint="each value of a choice must be distinct")
        elif isinstance(e, ir.Tuple):
            for i in e.items:
                self.value_expr(i, scope, in_set)
        elif isinstance(e, ir.Int | ir.Float | ir.Bool):
            return
        else:
            self.error("DPC213", e, "a value (number, tuple, set or name) is needed here")

    def typed_value(self, e: Any, scope: Scope, arg: Arg, func: str) -> None:
        """``e`` is the value of ``arg``; every value it can take must fit the kind."""
        where = f"{func}({arg.name} = ...)"
        if arg.kind == "word":  # an unknown word: name the words the argument takes
            for name in [n for n in e.walk() if isinstance(n, ir.Name)]:
                if name.id not in scope.names and name.id not in WORDS \
                        and name.id not in scope.later:
                    hint = did_you_mean(name.id, arg.words)
                    self.error("DPC401", name, f"{where}: expected one of "
                               f"{', '.join(arg.words)}, got '{name.id}'.{hint}".rstrip("."))
                    return
        before = len(self.diags)
        self.value_expr(e, scope)
        if len(self.diags) > before:
            return
        for v in self.values(e, scope):
            problem = _kind_problem(arg, v)
            if problem:
                b = scope.names.get(e.id) if isinstance(e, ir.Name) else None
                if b is not None and b.default and b.value is not None:  # said where written
                    use = f"{e.span.line}:{e.span.column}" if e.span else "its use"
                    self.error("DPC401", b.value, f"the default of '{e.id}': {where}: "
                               f"{problem}", hint=f"used at {use}; change the default, "
                                                  f"or pass {e.id} = ... in every call")
                else:
                    self.error("DPC401", e, f"{where}: {problem}")
                return


#: how many architectures of a space check infers the shapes of (all, in a smaller one),
#: and the work (options weighed and nodes built) after which it stops at 8 or more, so
#: that a space of large architectures costs check no more than a small one
SHAPE_SAMPLES = 64
SHAPE_WORK = 10_000


def _flat_options(e: ir.OneOf) -> list[Any]:
    """The options of a plain one_of, those of plain one_of options in their place."""
    return [x for o in e.options
            for x in (_flat_options(o) if isinstance(o, ir.OneOf) and o.apply is None
                      else [o])]


def _reads(node: Any, name: str, conditional: bool = False) -> list[bool]:
    """Each read of the tensor ``name`` below ``node``: whether it lies inside an option
    of a one_of (read only by the architectures that take that option)."""
    if isinstance(node, ir.Name):
        return [conditional] if node.id == name else []
    if isinstance(node, ir.OneOf):
        out = [r for o in node.options for r in _reads(o, name, True)]
        return out + [r for a in node.apply or () for r in _reads(a, name, conditional)]
    if not isinstance(node, IRNode):
        return []
    return [r for child in node.children() for r in _reads(child, name, conditional)]


def _chosen(name: ir.Name, scope: Scope) -> ir.OneOf | None:
    """The plain ``one_of`` a tensor name was assigned (``y = one_of(x, relu(x))``),
    whose options may be other names: None for any other value."""
    b = scope.names.get(name.id)
    if b is None or b.kind != "tensor" or not isinstance(b.value, ir.OneOf) \
            or b.value.apply is not None:
        return None
    return b.value


def _applied(e: ir.OneOf) -> tuple[Any, ...]:
    """The options of a one_of as the expressions they make: for
    ``one_of(relu(), gelu())(x)``, ``relu(x)`` and ``gelu(x)``."""
    if e.apply is None:
        return e.options
    args = tuple(a for a in e.apply if not isinstance(a, ir.Kwarg))
    return tuple(o.model_copy(update={"args": (*o.args, *args)})
                 if isinstance(o, ir.Call) else o for o in e.options)


def _alone(cell: ir.CellDef, d: Diagnostic) -> Diagnostic:
    """A problem of a cell that another cell inlines, as it shows when the cell is
    drawn or compiled alone: a warning."""
    message = d.message if d.severity == "warning" else f"alone, cell '{cell.name}' " \
        f"fails here: {d.message}"
    return Diagnostic(span=d.span, severity="warning", code=d.code, hint=d.hint,
                      message=message if d.severity == "warning"
                      else f"{message} (its callers are checked where they call it)")


def _aliased(name: ir.Name, scope: Scope) -> ir.Name:
    """The tensor a name stands for, through assignments of one name to another
    (``y = x``): ``y`` and ``x`` are one node of the architecture."""
    seen = {name.id}
    while True:
        b = scope.names.get(name.id)
        if b is None or b.kind != "tensor" or not isinstance(b.value, ir.Name) \
                or b.value.id in seen:
            return name
        name = b.value
        seen.add(name.id)


class _Metered(Decider):
    """A decider that adds up the options it weighs."""

    def __init__(self, inner: Decider) -> None:
        self.inner, self.work = inner, 0

    def choose(self, path: str, counts: list[int], probe: Any) -> int:
        self.work += len(counts)
        return self.inner.choose(path, counts, probe)


def _fails_whatever_the_inputs(flat: ir.Cell, size: tuple[int, int] | None
                               ) -> Diagnostic | None:
    """The shape problem of an architecture that no input channels avoid: inference
    runs with two different guesses, and only what fails the same way with both is
    reported."""
    failures: list[Diagnostic] = []
    for guess in (1009, 1013):
        channels = {name: guess + k for k, name in enumerate(flat.inputs)}
        try:
            infer(flat, channels, size)
        except DpcError as e:
            failures.append(e.diagnostics[0])
    if len(failures) == 2 and failures[0].message == failures[1].message:
        first = failures[0]
        return Diagnostic(span=first.span, message=first.message, hint=first.hint,
                          code=first.code)
    return None


#: the most option pairs one one_of compares for duplicates (its options can be many,
#: but only those alike need comparing)
_OPTION_PAIRS = 1_000_000

#: above this many combinations a tuple of sets is checked by a cover, not all of them
_PRODUCT = 256


def _tuples(columns: list[list[Any]]) -> list[tuple[Any, ...]]:
    """The values a tuple can take, from the values of each item: every combination
    while there are few; past :data:`_PRODUCT`, a cover that holds each item's every
    value at least once (the others at their first), so a pair of two sets of 1,000
    values costs 2,000 checks, not a million. Every check reads one item at a time."""
    if any(not c for c in columns):
        return []
    n = 1
    for c in columns:
        n *= len(c)
    if n <= _PRODUCT:
        out: list[tuple[Any, ...]] = [()]
        for c in columns:
            out = [(*o, v) for o in out for v in c]
        return out
    first = tuple(c[0] for c in columns)
    cover = [first]
    for i, c in enumerate(columns):
        cover += [(*first[:i], v, *first[i + 1:]) for v in c[1:]]
    return cover


def _normal(v: Any, kind: str) -> Any:
    """A value as the flat IR holds it: a pair ``n`` is ``(n, n)``, a float a float."""
    if kind == "pair" and isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    if kind == "pair" and isinstance(v, tuple) and len(v) == 1:
        return v * 2
    if kind == "float" and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


def _head(e: ir.Call) -> ir.Call:
    """The call narrowed to its name, for a caret under the op alone."""
    if e.span is None:
        return e
    s = e.span
    head = s.model_copy(update={"end_line": s.line, "end_column": s.column + len(e.func)})
    return e.model_copy(update={"span": head})


def _kind_problem(arg: Arg, v: Any) -> str | None:
    def positive(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= 1

    if arg.kind == "int":
        if not positive(v):
            return f"expected a positive integer, got {_show(v)}"
    elif arg.kind == "pair":
        parts = v if isinstance(v, tuple) else (v,)
        if len(parts) not in (1, 2) or not all(positive(x) for x in parts):
            return f"expected a positive integer n or a pair (h, w), got {_show(v)}"
    elif arg.kind == "float":
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return f"expected a finite number, got {_show(v)}"
    elif arg.kind == "bool":
        if not isinstance(v, bool):
            return f"expected true or false, got {_show(v)}"
    elif arg.kind == "word":
        if v not in arg.words:
            return f"expected one of {', '.join(arg.words)}, got {_show(v)}"
    return arg.check(v) if arg.check is not None else None


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return "(" + ", ".join(_show(x) for x in v) + ")"
    return str(v)


def _calls(body: tuple[Any, ...]) -> list[ir.Call]:
    """Every call in a body, nested repeats included (the generic IR walk)."""
    return [c for s in body for c in s.walk() if isinstance(c, ir.Call)]


def _calls_closure(cell: ir.CellDef, p: Program) -> list[ir.Call]:
    out, todo, seen = [], [cell], {cell.name}
    while todo:
        c = todo.pop()
        for call in _calls(c.body):
            out.append(call)
            if call.func in p.cells and call.func not in seen:
                seen.add(call.func)
                todo.append(p.cells[call.func])
    return out


def _all_assigns(body: tuple[Any, ...]) -> list[str]:
    names = []
    for s in body:
        if isinstance(s, ir.Assign | ir.Let):
            names.append(s.target if isinstance(s, ir.Assign) else s.name)
        elif isinstance(s, ir.Repeat):
            names.append(s.name)
    return names


def _can_stop(body: tuple[Any, ...], name: str) -> bool:
    """Can the body be built without calling ``name``?"""

    def ok(e: Any) -> bool:
        if isinstance(e, ir.Call):
            return e.func != name and all(ok(a) for a in (*e.args, *e.kwargs))
        if isinstance(e, ir.Kwarg):
            return ok(e.value)
        if isinstance(e, ir.OneOf):
            return any(ok(o) for o in e.options) and all(ok(a) for a in e.apply or ())
        return True

    return all(ok(s.value) for top in body for s in top.walk()
               if isinstance(s, ir.Assign | ir.Return | ir.Let))


def check(program: Program, size: tuple[int, int] | None = None) -> list[Diagnostic]:
    """Every problem in ``program``, sorted by file and position (worked out once per
    program and size)."""
    found = program.checks.get(size)
    if found is None:
        found = program.checks[size] = Checker(program, size).run()
    return list(found)


class Diagnostics(list[Diagnostic]):
    """The diagnostics of a file, with the source texts their carets need and the
    program they came from (None when the file did not parse)."""

    def __init__(self, diagnostics: list[Diagnostic], sources: dict[str, str],
                 program: Program | None) -> None:
        super().__init__(diagnostics)
        self.sources = sources
        self.program = program


def check_file(path: str | Path, size: tuple[int, int] | None = None) -> Diagnostics:
    """Parse and check a file; syntax errors come back as diagnostics too. The result
    carries the sources (for carets) and the parsed program."""
    try:
        program = load(path)
    except DpcError as e:
        return Diagnostics(e.diagnostics, e.sources, None)
    return Diagnostics(check(program, size), program.sources, program)


def errors(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """The errors among ``diagnostics`` (not the warnings)."""
    return [d for d in diagnostics if d.severity == "error"]


def checked(program: Program) -> Program:
    """``program``, or a :class:`DpcError` carrying every error in it (warnings do not
    stop it)."""
    diags = errors(check(program))
    if diags:
        raise DpcError(diags, program.sources)
    return program


__all__ = ["Diagnostics", "check", "check_file", "checked", "errors", "load", "load_text"]
