"""The calls pass: what stands where a tensor is needed. Ops and cells called with the
inputs and keyword arguments they take; names of values or of a repeat's branches
read as tensors; ``earlier``; and the choice points: options of a one_of that could
make the same architecture, and choices no architecture reads."""

from __future__ import annotations

from typing import Any

from dpcdsl import limits
from dpcdsl.errors import did_you_mean
from dpcdsl.lang import ir
from dpcdsl.lang.checker._base import Pass, Place, Scope, values
from dpcdsl.ops import CELL_CHANNELS, OPS, RENAMED, REQUIRED

NOT_A_TENSOR = "a tensor is needed here, not a value"

#: the most option pairs one one_of compares for duplicates (its options can be many,
#: but only those alike need comparing)
_OPTION_PAIRS = 1_000_000


class Calls(Pass):
    def visit_CellDef(self, cell: ir.CellDef, top: Scope) -> None:
        super().visit_CellDef(cell, top)
        self.unread_choices(cell)

    # ------------------------------------------------------------------ tensors
    def visit_Name(self, e: ir.Name, scope: Scope, at: Place) -> None:
        b = scope.names.get(e.id)
        if not at.tensor or b is None:
            return
        if b.kind == "value":
            self.error("DPC211", e, f"'{e.id}' is a value, but a tensor is needed here")
        elif b.kind == "group" and not at.variadic:
            self.error("DPC212",
                       e, f"'{e.id}' is a repeat of several branches; a single tensor "
                       "is needed here",
                       hint=f"use concat({e.id}) or sum({e.id}), or name one branch "
                            f"such as {e.id}0")

    def visit_Earlier(self, e: ir.Earlier, scope: Scope, at: Place) -> None:
        if at.tensor and not (scope.in_repeat and at.option):
            self.error("DPC214", e, "`earlier` is only meaningful as an option of one_of(...) "
                       "inside a repeat", hint="write e.g. one_of(x, earlier)")

    def _value(self, e: Any, scope: Scope, at: Place) -> None:
        if at.tensor:
            self.error("DPC211", e, NOT_A_TENSOR,
                       hint="tensor arguments come first; values go in `key = value`")

    visit_Int = visit_Float = visit_Bool = _value

    def visit_Tuple(self, e: ir.Tuple, scope: Scope, at: Place) -> None:
        self._value(e, scope, at)
        super().visit_Tuple(e, scope, at)

    def visit_SetLit(self, e: ir.SetLit, scope: Scope, at: Place) -> None:
        self._value(e, scope, at)
        super().visit_SetLit(e, scope, at)

    def visit_Arith(self, e: ir.Arith, scope: Scope, at: Place) -> None:
        self._value(e, scope, at)
        super().visit_Arith(e, scope, at)

    def visit_ChannelsOf(self, e: ir.ChannelsOf, scope: Scope, at: Place) -> None:
        if at.tensor:
            self.error("DPC211", e, f"{e.tensor.id}.channels is a number, but a tensor is "
                       "needed here", hint=f"write {e.tensor.id} for the tensor itself")
        super().visit_ChannelsOf(e, scope, at)

    # ------------------------------------------------------------------ calls
    def visit_Call(self, e: ir.Call, scope: Scope, at: Place) -> None:
        if at.tensor:
            self.call(e, at)
        super().visit_Call(e, scope, at)

    def call(self, e: ir.Call, at: Place) -> None:
        known = self.known_args(e.func)
        if known is None:
            hint = did_you_mean(e.func, [*OPS, *self.p.cells])
            self.error("DPC301", _head(e), f"unknown op '{e.func}'.{hint}".rstrip("."),
                       hint=None if hint else "ops: " + ", ".join(OPS))
            return
        if at.applied is not None and e.args:
            self.error("DPC306", e.args[0], "an option of an applied one_of takes no tensor "
                       "arguments; the one_of's own (...) supplies them",
                       hint=f"write {e.func}(...) with keyword arguments only")
        self.arity(e, at)
        given = set()
        for kw in e.kwargs:
            if kw.name in given:
                self.error("DPC303", kw, f"argument '{kw.name}' is given twice")
            given.add(kw.name)
            if kw.name not in known:
                renamed = RENAMED.get(kw.name) if "act" in known else None
                hint = "" if renamed else did_you_mean(kw.name, known)
                self.error("DPC302",
                           kw, f"'{e.func}' has no argument '{kw.name}'.{hint}".rstrip("."),
                           hint=f"it is now {renamed}" if renamed else None if hint else
                           ("arguments: " + ", ".join(known) if known else None))
        for arg in OPS[e.func].args if e.func in OPS else ():
            if arg.default is REQUIRED and arg.name not in given:
                self.error("DPC304", e, f"'{e.func}' needs `{arg.name} = ...`")

    def arity(self, e: ir.Call, at: Place) -> None:
        """The op or cell ``e`` calls takes as many tensor inputs as it is given."""
        n = len(e.args) + len([a for a in at.applied or () if not isinstance(a, ir.Kwarg)])
        if e.func in OPS:
            lo, hi = OPS[e.func].min_inputs, OPS[e.func].max_inputs
        else:
            lo = hi = len(self.p.cells[e.func].inputs)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo}-{hi}"
            self.error("DPC305",
                       e, f"'{e.func}' takes {want} tensor input{'s' if want != '1' else ''}, "
                       f"got {n}")

    # ------------------------------------------------------------------ choices
    def visit_OneOf(self, e: ir.OneOf, scope: Scope, at: Place) -> None:
        if at.tensor:
            if not e.options:
                self.error("DPC306", e, "one_of() needs at least one option")
            for o in e.options if e.apply is not None else ():
                if not isinstance(o, ir.Call):
                    self.error("DPC306", o, "an applied one_of(...)(x) chooses among "
                               "operations: each option must be a call such as "
                               "conv(kernel = 1)")
            for a in e.apply or ():
                if isinstance(a, ir.Kwarg):
                    self.error("DPC306", a, "pass keyword arguments to each option, not to "
                               "the applied one_of(...)(x)")
        super().visit_OneOf(e, scope, at)
        if at.tensor:
            self.distinct_options(e, scope)

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
                found = self.arg_values(options[i], name, scope)
                if found is None:
                    break
                for v in found:
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
            return self._same_names(a, b, scope)
        if isinstance(a, ir.Earlier) and isinstance(b, ir.Earlier):
            return True
        if not (isinstance(a, ir.Call) and isinstance(b, ir.Call)) or a.func != b.func \
                or len(a.args) != len(b.args):
            return False
        if not all(self.overlap(x, y, scope) for x, y in zip(a.args, b.args)):
            return False
        return all(self._kwargs_overlap(a, b, name, scope)
                   for name in {k.name for k in (*a.kwargs, *b.kwargs)})

    def _same_names(self, a: ir.Name, b: ir.Name, scope: Scope) -> bool:
        a, b = _aliased(a, scope), _aliased(b, scope)
        if a.id == b.id:
            return True
        # `y = one_of(x, relu(x))`: y is x in some architectures
        for one, other in ((a, b), (b, a)):
            value = _chosen(one, scope)
            if value is not None and self.overlap(value, other, scope):
                return True
        return False

    def _kwargs_overlap(self, a: ir.Call, b: ir.Call, name: str, scope: Scope) -> bool:
        """Can the argument ``name`` of the calls ``a`` and ``b`` (of one op) agree?"""
        arg = OPS[a.func].arg(name) if a.func in OPS else None
        if arg is not None and arg.kind == "tensor":
            ka, kb = a.kwarg(name), b.kwarg(name)
            return ka is None or kb is None or self.overlap(ka.value, kb.value, scope)
        va, vb = self.arg_values(a, name, scope), self.arg_values(b, name, scope)
        return va is None or vb is None or bool(va & vb)

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
            found: list[Any] = [default]
            if default is CELL_CHANNELS:  # the cell's width
                width = scope.names.get("channels")
                found = values(width.value, scope) if width is not None and \
                    width.kind == "value" else [256]
        else:
            found = values(kw.value, scope)
            if not found:
                return None
        kind = arg.kind if arg is not None else "any"
        return {repr(_normal(v, kind)) for v in found}


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
    if not isinstance(node, ir.IRNode):
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


__all__ = ["Calls"]
