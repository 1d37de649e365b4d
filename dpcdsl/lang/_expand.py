"""The expander: walks a checked cell and builds its flat :class:`~dpcdsl.lang.ir.Cell`.

Every choice point asks a *decider* for an option index, so one walk serves every
use: building a concrete cell (no choices), uniform sampling, decoding decisions,
enumeration and encoding (replaying prefixes of decisions). Counting runs the same
description of each statement (``_WALKS``) and is memoised, so a one_of is sampled in
proportion to the size of each option's sub-space, which makes sampling uniform over
whole architectures.
"""

from __future__ import annotations

import abc
import functools
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dpcdsl import limits
from dpcdsl.errors import DpcError
from dpcdsl.lang import ir
from dpcdsl.lang.printer import print_expr
from dpcdsl.lang.program import Program
from dpcdsl.ops import CELL_CHANNELS, OPS, WORDS

Probe = Callable[[int], bool] | None


class Mismatch(Exception):
    """Internal: the walk left the target cell (encode) or the decision prefix."""


class Ones(list[int]):
    """Option sizes of a choice among plain values: every option counts once."""


class Decider(abc.ABC):
    """Picks an option index at each choice point of a walk."""

    #: a decider that sets this is shown each choice point's options (values, tensor
    #: names, calls) through :meth:`options` just before it chooses there; the others
    #: cost the walk nothing for it
    wants_options: bool = False

    def options(self, path: str, options: Sequence[Any]) -> None:
        """The options of the choice point ``path`` (only when ``wants_options``)."""

    @abc.abstractmethod
    def choose(self, path: str, counts: list[int], probe: Probe) -> int:
        """``counts[i]`` is the size of option i's sub-space (0: not available);
        ``probe(i)``, when given, says whether option i can still match a target."""


@dataclass(slots=True)
class Ctx:
    """Where the walk is: the cell, its bindings, and the names it writes."""

    cell: ir.CellDef
    env: dict[str, tuple[str, Any]]  # name -> ("tensor", flat) | ("group", [flat]) |
    #                                           ("value", template)
    prefix: str
    ret_slot: str
    depth: int | None
    earlier: tuple[str, ...] | None
    vid: int  # identifies the value bindings, for count memos
    rename: dict[str, str] = field(default_factory=dict)

    def copy(self) -> Ctx:
        """The context with bindings of its own, for a walk that binds names."""
        return Ctx(self.cell, dict(self.env), self.prefix, self.ret_slot, self.depth,
                   self.earlier, self.vid, self.rename)

    @property
    def ckey(self) -> tuple[Any, ...]:
        return (self.cell.name, self.vid, self.depth,
                None if self.earlier is None else len(self.earlier))


class Expander:
    def __init__(self, program: Program, cell: ir.CellDef) -> None:
        self.p = program
        self.top = cell
        self._count_memo: dict[tuple[Any, ...], int] = {}
        self._template_memo: dict[tuple[int, int], Any] = {}
        self._widths_memo: dict[int, bool] = {}
        self._vids: dict[Any, int] = {}
        self._synthetic: dict[int, list[ir.Call]] = {}
        self._slots: dict[str, tuple[Callable[[str], str], str]] = {}
        self._plans: dict[tuple[Any, ...], _CallPlan] = {}
        self._oneof_memo: dict[tuple[Any, ...], tuple[list[Any], list[int]]] = {}
        self._top_values = {name: ("value", let.value) for name, let in program.lets.items()}
        self._top_ctx = self._cell_ctx(cell, [p.name for p in cell.inputs], {},
                                       prefix="", ret_slot="out", caller=None)
        self._inputs = tuple(p.name for p in cell.inputs)
        levels = tuple(p.level for p in cell.inputs)
        self._levels = levels if any(v is not None for v in levels) else ()
        channels = self._top_ctx.env.get("channels", ("value", ir.Int(value=256)))[1]
        self._channels = channels.value if isinstance(channels, ir.Int) else 256

    # ------------------------------------------------------------ contexts
    def _vid(self, values: tuple[Any, ...]) -> int:
        return self._vids.setdefault(values, len(self._vids))

    def _cell_ctx(self, cell: ir.CellDef, inputs: list[str], kwargs: dict[str, Any],
                  caller: Ctx | None, prefix: str, ret_slot: str,
                  depth: int | None = None) -> Ctx:
        env: dict[str, tuple[str, Any]] = dict(self._top_values)
        if caller is not None and "channels" in caller.env:
            env["channels"] = caller.env["channels"]
        for prm in cell.options:
            env[prm.name] = ("value", self._resolve(prm.default, env))
        for k, template in kwargs.items():
            env[k] = ("value", template)
        for prm, flat in zip(cell.inputs, inputs):
            env[prm.name] = ("tensor", flat)
        values = tuple(sorted((k, v[1]) for k, v in env.items() if v[0] == "value"
                              and k not in self.p.lets))
        depth = cell.depth if depth is None else depth
        return Ctx(cell, env, prefix, ret_slot, depth, None, self._vid(values))

    # ------------------------------------------------------------ values
    def _resolve(self, e: Any, env: dict[str, tuple[str, Any]]) -> Any:
        """Substitute value names: the result holds only literals, words, tuples, sets."""
        if isinstance(e, ir.Name):
            b = env.get(e.id)
            if b is not None and b[0] == "value":
                return b[1]
            return e  # a word such as `paper`
        if isinstance(e, ir.Tuple):
            return ir.Tuple(items=tuple(self._resolve(i, env) for i in e.items), span=e.span)
        if isinstance(e, ir.SetLit):
            return ir.SetLit(items=tuple(self._resolve(i, env) for i in e.items), span=e.span)
        if isinstance(e, ir.Arith):
            return self._computed(e, self._resolve(e.left, env), self._resolve(e.right, env))
        if isinstance(e, ir.ChannelsOf) and not e.bound:  # the tensor's flat name
            flat = env[e.tensor.id][1]
            return ir.ChannelsOf(tensor=ir.Name(id=flat, span=e.tensor.span), bound=True,
                                 span=e.span)
        return e

    def _computed(self, e: ir.Arith, left: Any, right: Any) -> Any:
        """The value of ``left op right`` (resolved): an integer, or the set of the
        distinct results where an operand is a set (a choice among them). Where an
        operand is a width (``x.channels``), the result is the arithmetic itself, worked
        out when the cell is built."""
        results: list[int | ir.Arith] = []
        for a in left.items if isinstance(left, ir.SetLit) else (left,):
            for b in right.items if isinstance(right, ir.SetLit) else (right,):
                if not (_integer(a) and _integer(b)):
                    raise DpcError.at(e.span, "arithmetic takes integers, got "
                                      f"{print_expr(a if not _integer(a) else b)}",
                                      sources=self.p.sources, code="DPC401")
                if e.op == "//" and type(b) is ir.Int and b.value == 0:
                    raise DpcError.at(e.span, "division by 0", sources=self.p.sources,
                                      code="DPC401")
                value: int | ir.Arith = ir.ARITH[e.op](a.value, b.value) \
                    if type(a) is ir.Int and type(b) is ir.Int else \
                    ir.Arith(op=e.op, left=a, right=b, span=e.span)
                if value not in results:
                    results.append(value)
        items = tuple(ir.Int(value=v, span=e.span) if isinstance(v, int) else v
                      for v in results)
        if not isinstance(left, ir.SetLit) and not isinstance(right, ir.SetLit):
            return items[0]
        return ir.SetLit(items=items, span=e.span)

    def _template(self, e: Any, ctx: Ctx) -> Any:
        key = (id(e), ctx.vid)
        t = self._template_memo.get(key)
        if t is None:
            t = self._resolve(e, ctx.env)
            if not self._reads_widths(e):  # a width names a tensor the vid does not
                self._template_memo[key] = t
        return t

    def _reads_widths(self, e: Any) -> bool:
        """Does the expression ``e`` read a tensor's width (``x.channels``)?"""
        found = self._widths_memo.get(id(e))
        if found is None:
            found = self._widths_memo[id(e)] = isinstance(e, ir.IRNode) and any(
                isinstance(n, ir.ChannelsOf) for n in e.walk())
        return found

    @staticmethod
    def _template_count(t: Any) -> int:
        if isinstance(t, ir.SetLit):
            return len(t.items)
        if isinstance(t, ir.Tuple):
            n = 1
            for i in t.items:
                n *= Expander._template_count(i)
            return n
        return 1

    @staticmethod
    def _value_plan(t: Any, path: str, kind: str, chain: tuple[int, ...] = ()) -> Any:
        """A resolved template as a plan: a :class:`_Choice` per set (with its path and
        its values), tuples of plans, and plain values."""
        if isinstance(t, ir.SetLit):
            return _Choice(path, tuple(_py(i) for i in t.items), chain, Ones([1] * len(t.items)))
        if isinstance(t, ir.Tuple):
            names = ("h", "w") if kind == "pair" and len(t.items) == 2 else None
            return tuple(Expander._value_plan(item, f"{path}.{names[i] if names else i}",
                                              kind, (*chain, i))
                         for i, item in enumerate(t.items))
        return _py(t)

    def _choose_value(self, plan: Any, kind: str, want: Any, d: Decider) -> Any:
        if type(plan) is _Choice:
            probe: Probe = None
            if want is not _NO_TARGET:
                def probe(i: int) -> bool:
                    return _fits(plan.values[i], want, plan.chain, kind)
            return plan.values[self.choose(d, plan.path, plan.ones, probe, plan.values)]
        if type(plan) is tuple:  # a rate or grid pair: its sets drawn here, in one frame
            out = []
            for p in plan:
                if type(p) is _Choice and want is _NO_TARGET:
                    out.append(p.values[self.choose(d, p.path, p.ones, None, p.values)])
                else:
                    out.append(self._choose_value(p, kind, want, d))
            return tuple(out)
        return plan

    # ------------------------------------------------------------ walking
    def run(self, d: Decider, target: ir.Cell | None = None) -> tuple[ir.Cell, dict[str, int]]:
        self.nodes: list[ir.Node] = []
        self.names: set[str] = set(self._inputs)
        self.decisions: dict[str, int] = {}
        self.target = {n.name: n for n in target.nodes} if target is not None else None
        with limits.stack_guard(self.top.span, f"cell '{self.top.name}'", self.p.sources):
            out = self.block(self.top.body, self._top_ctx.copy(), d)
        cell = ir.construct(ir.Cell, span=self.top.span, name=self.top.name,
                            inputs=self._inputs, levels=self._levels,
                            channels=self._channels,
                            nodes=tuple(self.nodes), output=out)
        return cell, self.decisions

    def choose(self, d: Decider, path: str, counts: list[int], probe: Probe,
               options: Sequence[Any] = ()) -> int:
        if path in self.decisions:
            k = 2
            while f"{path}.{k}" in self.decisions:
                k += 1
            path = f"{path}.{k}"
        if d.wants_options:
            d.options(path, options)
        idx = d.choose(path, counts, probe)
        self.decisions[path] = idx
        return idx

    # each statement class is described once, by a generator in ``_WALKS``: it yields the
    # parts the statement is made of (a tensor expression at a slot, or a body in a
    # context); the walk that runs it writes the node each part made into the part
    # (``made``), and the description binds names in the context from it. Building
    # (here) and counting (``count_block``) both run these descriptions, so they walk the
    # same parts in the same contexts. A body's tensor is the last one its statements
    # made. Expressions dispatch on ``type(x) is``: it is the hot path of sampling, and
    # isinstance calls were a fifth of its time.
    def block(self, body: tuple[Any, ...], ctx: Ctx, d: Decider) -> str:
        out = ""
        for s in body:
            for part in _WALKS[type(s)](self, s, ctx):
                if type(part) is _Tensor:
                    out = part.made = self.tensor(part.expr, ctx, d, *self._slot(part.slot))[0]
                else:
                    part.made = self.block(part.body, part.ctx, d)  # type: ignore[union-attr]
        return out

    def _slot(self, slot: str) -> tuple[Callable[[str], str], str]:
        """A statement's naming rule (every op it makes directly is ``slot``) and the
        path of its op choice, made once per slot."""
        out = self._slots.get(slot)
        if out is None:
            out = self._slots[slot] = (_fixed(slot), f"{slot}.op")
        return out

    def tensor(self, e: Any, ctx: Ctx, d: Decider, slot_for: Callable[[str], str],
               path: str, want: str | None = None) -> list[str]:
        if type(e) is ir.Name:
            kind, value = ctx.env[e.id]
            return list(value) if kind == "group" else [value]
        if type(e) is ir.Call:
            return [self.call(e, ctx, d, slot_for(e.func))]
        if type(e) is ir.OneOf:
            return self.one_of(e, ctx, d, slot_for, path, want)
        raise AssertionError(f"not a tensor: {e!r}")  # pragma: no cover - checked

    def one_of(self, e: ir.OneOf, ctx: Ctx, d: Decider, slot_for: Callable[[str], str],
               path: str, want: str | None) -> list[str]:
        """A choice point: the decider picks an option, weighed by its sub-space."""
        options, counts = self._oneof_plan(e, ctx)
        if e.apply is not None:  # one_of(ops...)(args): the options are calls
            op_probe: Probe = None
            if self.target is not None:
                def op_probe(i: int) -> bool:  # type: ignore[misc]
                    return self._probe_call(options[i], slot_for, want)
            idx = self.choose(d, path, counts, op_probe, e.options)
            return [self.call(options[idx], ctx, d, slot_for(options[idx].func))]
        probe: Probe = None
        if self.target is not None:
            def probe(i: int) -> bool:  # type: ignore[misc]
                return self._probe_option(options[i], ctx, slot_for, want)
        idx = self.choose(d, path, counts, probe, options)
        o = options[idx]
        if type(o) is str:
            return [o]
        if type(o) is ir.Name:  # the common `one_of(x, earlier)`: no sub-path
            kind, value = ctx.env[o.id]
            return list(value) if kind == "group" else [value]
        return self.tensor(o, ctx, d, slot_for, path + ".sub", want)

    def _probe_option(self, o: Any, ctx: Ctx, slot_for: Callable[[str], str],
                      want: str | None) -> bool:
        """Can the option ``o`` of a plain one_of still make the target's tensor?"""
        if want is None and type(o) in (str, ir.Name):  # any tensor may do
            return True
        if type(o) is str:
            return o == want
        if type(o) is ir.Name:
            return bool(ctx.env[o.id][1] == want)
        if type(o) is ir.OneOf:  # a nested choice: its own probes decide
            return True
        return self._probe_call(o, slot_for, want)

    def _oneof_plan(self, e: ir.OneOf, ctx: Ctx) -> tuple[list[Any], list[int]]:
        """A one_of's options (applied calls, or expressions with `earlier` spelled out
        as branch names) and the size of each one's sub-space, worked out once."""
        key = (id(e), ctx.vid, ctx.depth, ctx.earlier)
        plan = self._oneof_memo.get(key)
        if plan is None:
            options = self._applied(e) if e.apply is not None else self._options(e, ctx)
            counts = [1 if type(o) is str else self.count_tensor(o, ctx) for o in options]
            if all(c == 1 for c in counts):  # `one_of(x, earlier)`: a draw, not a scan
                counts = Ones(counts)
            plan = self._oneof_memo[key] = (options, counts)
        return plan

    def _probe_call(self, c: ir.Call, slot_for: Callable[[str], str], want: str | None) -> bool:
        slot = slot_for(c.func)
        if want is not None and slot != want:
            return False
        node = self.target.get(slot) if self.target is not None else None
        if c.func in OPS:
            return node is not None and node.op == c.func
        return True

    @staticmethod
    def _options(e: ir.OneOf, ctx: Ctx) -> list[Any]:
        out: list[Any] = []
        for o in e.options:
            if isinstance(o, ir.Earlier):
                out.extend(ctx.earlier or ())
            else:
                out.append(o)
        return out

    def _applied(self, e: ir.OneOf) -> list[ir.Call]:
        """``one_of(f(..), g(..))(args)`` as the calls ``f(args, ..)``, ``g(args, ..)``."""
        calls = self._synthetic.get(id(e))
        if calls is None:
            calls = self._synthetic[id(e)] = []
            for o in e.options:
                assert isinstance(o, ir.Call) and e.apply is not None
                calls.append(ir.Call(func=o.func, args=e.apply, kwargs=o.kwargs, span=o.span))
        return calls

    def _call_plan(self, e: ir.Call, ctx: Ctx, slot: str) -> _CallPlan:
        """What a call site needs on every walk, worked out once: its tensor
        arguments, their child names and choice paths, and its attributes, each either
        a constant or a template to choose from."""
        key = (id(e), ctx.vid, slot)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        spec = OPS.get(e.func)
        tensor_kw = [k.value for k in e.kwargs if spec is not None
                     and getattr(spec.arg(k.name), "kind", None) == "tensor"]
        positions = [*e.args, *tensor_kw]
        n = len(positions)
        # a cell call's arguments get their own namespace (S_in_...), apart from the
        # inlined body (S_...), whose return expression also names children S_op
        slot_fors = _child_slots(slot if spec is not None else f"{slot}_in", positions)
        paths = [f"{slot}.input" if n == 1 else f"{slot}.input{i}" for i in range(n)]
        attrs: list[tuple[str, Any, str, Any]] = []
        if spec is not None:
            given = {k.name: k.value for k in e.kwargs}
            for arg in spec.value_args:
                if arg.name in given:
                    t, kind = self._template(given[arg.name], ctx), arg.kind
                elif arg.default is CELL_CHANNELS:
                    t, kind = ctx.env.get("channels", ("value", ir.Int(value=256)))[1], "int"
                else:
                    attrs.append((arg.name, None, arg.kind, arg.default))
                    continue
                const = _NO_TARGET if _has_set(t) else _convert(_py(t), kind)
                attrs.append((arg.name, self._value_plan(t, f"{slot}.{arg.name}", kind), kind,
                              const))
        order = sorted(range(len(attrs)), key=lambda i: attrs[i][0])
        fixed = tuple((attrs[i][0], attrs[i][3]) for i in order)
        chosen = [(order.index(i), name, vplan, kind)  # in the op's argument order
                  for i, (name, vplan, kind, const) in enumerate(attrs) if const is _NO_TARGET]
        plan = _CallPlan(spec, positions, slot_fors, paths, fixed, chosen,
                         tuple(zip(positions, slot_fors, paths, (None,) * n)))
        if not any(self._reads_widths(k.value) for k in e.kwargs):
            self._plans[key] = plan
        return plan

    def call(self, e: ir.Call, ctx: Ctx, d: Decider, slot: str) -> str:
        plan = self._plans.get((id(e), ctx.vid, slot)) or self._call_plan(e, ctx, slot)
        target = None
        args: Any = plan.args
        if self.target is not None:  # encoding: the walk follows the target cell
            target = self.target.get(slot)
            if plan.spec is not None and (target is None or target.op != e.func):
                raise Mismatch(slot)
            if target is not None and len(target.inputs) == len(plan.positions):
                args = zip(plan.positions, plan.slot_fors, plan.paths, target.inputs)
        inputs: list[str] = []
        for a, slot_for, path, want in args:
            inputs += self.tensor(a, ctx, d, slot_for, path, want)
        if plan.spec is None:
            return self.inline(e, ctx, d, slot, inputs)
        attrs: Any = plan.fixed
        if plan.chosen:
            attrs = list(attrs)
            for i, name, vplan, kind in plan.chosen:
                want_v = target.attr(name) if target is not None else _NO_TARGET
                attrs[i] = (name, _convert(self._choose_value(vplan, kind, want_v, d), kind))
            attrs = tuple(attrs)
        node = ir.construct(ir.Node, span=e.span, name=slot, op=e.func,
                            inputs=tuple(inputs), attrs=attrs)
        self.emit(node)
        return slot

    def emit(self, node: ir.Node) -> None:
        if node.name in self.names:
            raise DpcError.at(node.span, f"the node name '{node.name}' is made twice: a "
                              "generated name for a nested op or branch clashes with "
                              "another node", hint="rename the statement that clashes",
                              sources=self.p.sources, code="DPC203")
        if self.target is not None:
            t = self.target.get(node.name)
            if t is None or t.op != node.op or t.inputs != node.inputs or t.attrs != node.attrs:
                raise Mismatch(node.name)
        self.names.add(node.name)
        self.nodes.append(node)
        if len(self.nodes) >= limits.MAX_NODES:
            limits.check_nodes(len(self.nodes), self.top.span, self.p.sources)

    def inline(self, e: ir.Call, ctx: Ctx, d: Decider, slot: str, inputs: list[str]) -> str:
        cell = self.p.cells[e.func]
        depth = _callee_depth(cell, ctx)
        if depth is not None and depth < 0:
            raise DpcError.at(e.span, f"'{cell.name}' recurses deeper than its depth "
                              f"bound {cell.depth}", sources=self.p.sources, code="DPC504")
        kwargs = {k.name: self._template(k.value, ctx) for k in e.kwargs}
        # every inline extends the prefix, so names stay unique however deep the
        # recursion goes: S_<statement>, S_out for the body's return, S_in_... for args
        inner = self._cell_ctx(cell, inputs, kwargs, ctx, prefix=slot + "_",
                               ret_slot=slot + "_out", depth=depth)
        return self.block(cell.body, inner, d)

    # ------------------------------------------------------------ counting
    def count(self) -> int:
        with limits.stack_guard(self.top.span, f"cell '{self.top.name}'", self.p.sources):
            return self.count_block(self.top.body, self._top_ctx)

    def count_block(self, body: tuple[Any, ...], ctx: Ctx) -> int:
        """The size of a body's sub-space: the product of its statements' parts, each
        walked as building walks it (``_WALKS``); counting names no node."""
        n = 1
        ctx = ctx.copy()
        for s in body:
            for part in _WALKS[type(s)](self, s, ctx):
                n *= self.count_tensor(part.expr, ctx) if isinstance(part, _Tensor) \
                    else self.count_block(part.body, part.ctx)
                if n == 0:
                    return 0
                if n.bit_length() > limits.MAX_COUNT_BITS:
                    limits.check_count(n, self.top.span, self.p.sources)
        return n

    def count_tensor(self, e: Any, ctx: Ctx) -> int:
        """The size of the sub-space of the tensor expression ``e`` (memoised)."""
        if type(e) is ir.Name or type(e) is ir.Earlier:
            return 1
        key = (id(e), *ctx.ckey)
        n = self._count_memo.get(key)
        if n is not None:
            return n
        n = self._count_call(e, ctx) if type(e) is ir.Call else self._count_one_of(e, ctx)
        if n.bit_length() > limits.MAX_COUNT_BITS:
            limits.check_count(n, self.top.span, self.p.sources)
        self._count_memo[key] = n
        return n

    def _count_call(self, e: ir.Call, ctx: Ctx) -> int:
        """Its tensor arguments' sub-spaces times its values' choices; a cell's body."""
        n = 1
        spec = OPS.get(e.func)
        for a in e.args:
            n *= self.count_tensor(a, ctx)
            if n.bit_length() > limits.MAX_COUNT_BITS:
                limits.check_count(n, self.top.span, self.p.sources)
        if spec is None:  # a value passed to a cell is chosen where the cell's body
            # uses it, as sampling does, so the body's count holds its choices
            return n * self._count_cell(e, ctx) if n else 0
        for k in e.kwargs:
            arg = spec.arg(k.name)
            n *= self.count_tensor(k.value, ctx) if arg is not None and arg.kind == "tensor" \
                else self._template_count(self._template(k.value, ctx))
        if spec.arg("channels") is not None and e.kwarg("channels") is None:
            n *= self._template_count(ctx.env.get("channels", ("value", None))[1])
        return n

    def _count_one_of(self, e: ir.OneOf, ctx: Ctx) -> int:
        """The sum of its options' sub-spaces; `earlier` is one per earlier branch."""
        assert type(e) is ir.OneOf, e  # the checker lets no other tensor through
        if e.apply is not None:
            return sum(self.count_tensor(c, ctx) for c in self._applied(e))
        return sum(len(ctx.earlier or ()) if type(o) is ir.Earlier
                   else self.count_tensor(o, ctx) for o in e.options)

    def _count_cell(self, e: ir.Call, ctx: Ctx) -> int:
        cell = self.p.cells[e.func]
        depth = _callee_depth(cell, ctx)
        if depth is not None and depth < 0:  # no way through at this depth
            return 0
        kwargs = {k.name: self._template(k.value, ctx) for k in e.kwargs}
        inner = self._cell_ctx(cell, [p.name for p in cell.inputs], kwargs, ctx, prefix="",
                               ret_slot="", depth=depth)
        key = ("cell", *inner.ckey)
        n = self._count_memo.get(key)
        if n is None:
            n = self._count_memo[key] = self.count_block(cell.body, inner)
        return n


class Uniform(Decider):
    """Uniform over whole architectures: an option in proportion to its sub-space."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.bits = rng.getrandbits

    def choose(self, path: str, counts: list[int], probe: Probe) -> int:
        n = len(counts)
        if n == 1:
            return 0
        ones = type(counts) is Ones
        if not ones:
            n = sum(counts)
        # an exactly uniform r in [0, n): rejection sampling on random bits, the method
        # (and so the sequence) of random.randrange(n), inlined on the hot path
        k = n.bit_length()
        r = self.bits(k)
        while r >= n:
            r = self.bits(k)
        if ones:
            return r
        for i, c in enumerate(counts):
            if r < c:
                return i
            r -= c
        raise AssertionError("unreachable")  # pragma: no cover


class _Replay(Decider):
    """Depth-first search over decisions: replays a prefix, then takes the first
    option that the probe accepts and remembers the others for backtracking."""

    def __init__(self, prefix: list[int]) -> None:
        self.prefix = prefix
        self.k = 0
        self.frames: list[tuple[int, list[int]]] = []

    def choose(self, path: str, counts: list[int], probe: Probe) -> int:
        k = self.k
        self.k += 1
        if k < len(self.prefix):
            return self.prefix[k]
        options = [i for i, c in enumerate(counts) if c and (probe is None or probe(i))]
        if not options:
            raise Mismatch(path)
        self.frames.append((k, options[1:]))
        self.prefix.append(options[0])
        return options[0]


def depth_first(expander: Expander, target: ir.Cell | None
                ) -> Iterator[tuple[ir.Cell, dict[str, int]]]:
    """Every architecture (or, with ``target``, the ones equal to it) with its
    decisions, by depth-first search over the decisions."""
    stack: list[tuple[int, list[int]]] = []
    prefix: list[int] = []
    while True:
        d = _Replay(list(prefix))
        try:
            cell, decisions = expander.run(d, target)
            ok = target is None or _same(cell, target)
        except Mismatch:
            ok, cell, decisions = False, None, {}
        stack.extend(d.frames)
        prefix = d.prefix
        if ok and cell is not None:
            yield cell, dict(decisions)
        while stack and not stack[-1][1]:
            stack.pop()
        if not stack:
            return
        k, rest = stack[-1]
        stack[-1] = (k, rest[1:])
        prefix = prefix[:k] + [rest[0]]


def _same(a: ir.Cell, b: ir.Cell) -> bool:
    return (a.inputs, a.nodes, a.output) == (b.inputs, b.nodes, b.output)


_NO_TARGET = object()

class _Tensor:
    """A part of a statement: the tensor expression ``expr``, its nodes named ``slot``;
    ``made``, once walked, the node that holds its value ("" when counting)."""

    __slots__ = ("expr", "made", "slot")

    def __init__(self, expr: Any, slot: str) -> None:
        self.expr, self.slot, self.made = expr, slot, ""


class _Body:
    """A part of a statement: the statements ``body``, walked in the context ``ctx``;
    ``made``, once walked, the node that holds its value."""

    __slots__ = ("body", "ctx", "made")

    def __init__(self, body: tuple[Any, ...], ctx: Ctx) -> None:
        self.body, self.ctx, self.made = body, ctx, ""


Walk = Iterator[_Tensor | _Body]


def _let(x: Expander, s: ir.Let, ctx: Ctx) -> Walk:
    """A value for the statements after it; no part. ``vid`` names the new bindings."""
    value = x._template(s.value, ctx)
    ctx.env[s.name] = ("value", value)
    ctx.vid = x._vid((ctx.vid, s.name, value))
    yield from ()


def _assign(x: Expander, s: ir.Assign, ctx: Ctx) -> Walk:
    part = _Tensor(s.value, ctx.rename.get(s.target, ctx.prefix + s.target))
    yield part
    ctx.env[s.target] = ("tensor", part.made)


def _return(x: Expander, s: ir.Return, ctx: Ctx) -> Walk:
    yield _Tensor(s.value, ctx.ret_slot)


def _repeat(x: Expander, s: ir.Repeat, ctx: Ctx) -> Walk:
    """Branch i is the body in a context of its own, where `earlier` is the branches
    before it and the branch's name is its slot."""
    branches: list[str] = []
    for i in range(s.count):
        slot = f"{ctx.prefix}{s.name}{i}"
        part = _Body(s.body, Ctx(ctx.cell, dict(ctx.env), slot + "_", ctx.ret_slot,
                                 ctx.depth, tuple(branches), ctx.vid, {s.name: slot}))
        yield part
        branches.append(part.made)
    ctx.env[s.name] = ("group", branches)
    for i, b in enumerate(branches):
        ctx.env[f"{s.name}{i}"] = ("tensor", b)


def _for(x: Expander, s: ir.For, ctx: Ctx) -> Walk:
    """The body's parts once per item, in the loop's context: the loop's names bound to
    the item's parts (the tensor a name stands for, or a value), and item i's node for
    each name the body assigns named with i appended. What the body binds stays bound
    after the loop (the last item's), and so does each item's under its own name
    (``x0``, ``x1``...); the loop's own names do not."""
    targets = [t.target for t in s.body if isinstance(t, ir.Assign)]
    outer = ctx.rename
    for i, item in enumerate(s.items):
        for name, part in zip(s.names, s.parts(item)):
            bound = ctx.env.get(part.id) if type(part) is ir.Name else None
            if bound is not None and bound[0] != "value":
                ctx.env[name] = bound
            else:
                value = x._template(part, ctx)
                ctx.env[name] = ("value", value)
                ctx.vid = x._vid((ctx.vid, name, value))
        ctx.rename = {**outer, **{t: f"{ctx.prefix}{t}{i}" for t in targets}}
        for st in s.body:
            yield from _WALKS[type(st)](x, st, ctx)
        for t in targets:  # item i's value of each name, x<i>, for the statements after
            ctx.env[f"{t}{i}"] = ctx.env[t]
    ctx.rename = outer
    for name in s.names:
        ctx.env.pop(name, None)


#: the one description of each statement class, which building and counting both run
_WALKS: dict[type, Callable[[Expander, Any, Ctx], Walk]] = {
    ir.Let: _let, ir.Assign: _assign, ir.Repeat: _repeat, ir.For: _for, ir.Return: _return}


def _callee_depth(cell: ir.CellDef, ctx: Ctx) -> int | None:
    """The depth bound inside a call of ``cell`` from ``ctx``: one less on a recursive
    call of a bounded cell (below 0: the recursion may go no deeper), None otherwise.
    Building and counting both ask here."""
    if cell.name == ctx.cell.name and ctx.depth is not None:
        return ctx.depth - 1
    return None


@dataclass(frozen=True)
class _CallPlan:
    spec: Any  # OpSpec, or None for a cell used as an op
    positions: list[Any]  # tensor arguments
    slot_fors: list[Callable[[str], str]]
    paths: list[str]  # choice path of each tensor argument
    fixed: tuple[tuple[str, Any], ...]  # the attributes sorted by name; a chosen one
    #                                     holds a placeholder
    chosen: list[tuple[int, str, Any, str]]  # index in ``fixed``, name, value plan, kind
    #: each tensor argument with its naming rule and choice path, and no target
    args: tuple[tuple[Any, Callable[[str], str], str, None], ...] = ()


@dataclass(frozen=True)
class _Choice:
    """A set in a resolved template: a choice point among plain values."""

    path: str
    values: tuple[Any, ...]
    chain: tuple[int, ...]  # where it sits in its tuple, for matching a target value

    ones: Ones  # every value is one option


def _has_set(t: Any) -> bool:
    if isinstance(t, ir.SetLit):
        return True
    return isinstance(t, ir.Tuple) and any(_has_set(i) for i in t.items)


def _fixed(slot: str) -> Callable[[str], str]:
    return lambda func: slot


def _funcs(e: Any) -> set[str]:
    if isinstance(e, ir.Call):
        return {e.func}
    if isinstance(e, ir.OneOf):
        return set().union(*(_funcs(o) for o in e.options)) if e.options else set()
    return set()


def _child_slots(parent: str, positions: list[Any]) -> list[Callable[[str], str]]:
    """Names for nested ops: ``{parent}_{op}``, plus the argument position where two
    arguments could make the same op."""
    funcs = [_funcs(a) for a in positions]
    uses = Counter(f for fs in funcs for f in fs)  # how many positions can make each op
    out: list[Callable[[str], str]] = []
    for i, fs in enumerate(funcs):
        clash = any(uses[f] > 1 for f in fs)
        suffix = str(i) if clash else ""
        out.append(functools.partial(_slot_name, parent, suffix))
    return out


def _slot_name(parent: str, suffix: str, func: str) -> str:
    return f"{parent}_{func}{suffix}"


def _integer(t: Any) -> bool:
    """Is the resolved value ``t`` an integer: a literal, or a width (``x.channels``)
    and arithmetic on widths, known when the cell is built?"""
    return type(t) is ir.Int or isinstance(t, ir.ChannelsOf | ir.Arith)


def _py(t: Any) -> Any:
    if isinstance(t, ir.ChannelsOf | ir.Arith):  # a width: an attribute as it is
        return t
    if isinstance(t, ir.Int | ir.Float | ir.Bool):
        return t.value
    if isinstance(t, ir.Name):
        return t.id
    if isinstance(t, ir.Tuple):
        return tuple(_py(i) for i in t.items)
    raise AssertionError(f"not a value: {t!r}")  # pragma: no cover - checked


def _convert(v: Any, kind: str) -> Any:
    if isinstance(v, ir.IRNode):
        return v
    if kind == "pair":  # n, (n,) and (h, w) are (n, n), (n, n) and (h, w)
        pair = (v,) if isinstance(v, int) else tuple(v)
        return pair * 2 if len(pair) == 1 else pair
    if kind == "float":
        return float(v)
    return v


def _fits(v: Any, want: Any, chain: tuple[int, ...], kind: str) -> bool:
    for i in chain:
        if not isinstance(want, tuple) or i >= len(want):
            return False
        want = want[i]
    if not chain:
        return _convert(v, kind) == want
    return v == want


__all__ = ["Ctx", "Decider", "Expander", "Mismatch", "Ones", "Uniform", "WORDS", "depth_first"]
