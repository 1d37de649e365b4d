"""The values pass: what stands where a value is needed, and whether every value it can
take fits the argument it is given to. Sets and tuples, the kinds of the op registry's
arguments, each op's own ``validate`` rule, and values passed to a cell's parameters
(as strict as the ops the cell passes them on to)."""

from __future__ import annotations

from typing import Any

from dpcdsl import limits
from dpcdsl.errors import did_you_mean
from dpcdsl.lang import ir
from dpcdsl.lang.checker._base import Pass, Place, Scope, calls, integer, resolve, values
from dpcdsl.lang.checker._sizes import uniform
from dpcdsl.lang.printer import print_expr
from dpcdsl.ops import OPS, WORDS, Arg, OpSpec
from dpcdsl.ops._spec import show_value

NOT_A_VALUE = "a value (number, tuple, set or name) is needed here"


class Values(Pass):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._uses: dict[str, dict[str, list[tuple[str, Arg]]]] = {}

    def visit_CellDef(self, cell: ir.CellDef, top: Scope) -> None:
        for prm in cell.options:  # `channels` has no use site of its own to check it
            if prm.name == "channels" and prm.default is not None \
                    and self.p.cells.get(cell.name) is cell:
                self.passed_value(ir.Kwarg(name=prm.name, value=prm.default, span=prm.span),
                                  top, cell.name)
        super().visit_CellDef(cell, top)

    # ------------------------------------------------------------------ where a value is
    def visit_Name(self, e: ir.Name, scope: Scope, at: Place) -> None:
        b = scope.names.get(e.id)
        if not at.tensor and e.id not in WORDS and b is not None and b.kind != "value":
            self.error("DPC213", e, f"'{e.id}' is a tensor, but a value is needed here")

    def visit_Call(self, e: ir.Call, scope: Scope, at: Place) -> None:
        if not at.tensor:
            self.error("DPC213", e, NOT_A_VALUE)
            return
        super().visit_Call(e, scope, at)
        if e.func in OPS:
            self.validate(e, scope, OPS[e.func])

    def visit_OneOf(self, e: ir.OneOf, scope: Scope, at: Place) -> None:
        if not at.tensor:
            self.error("DPC213", e, NOT_A_VALUE)
        super().visit_OneOf(e, scope, at)

    def visit_Earlier(self, e: ir.Earlier, scope: Scope, at: Place) -> None:
        if not at.tensor:
            self.error("DPC213", e, NOT_A_VALUE)

    def visit_SetLit(self, e: ir.SetLit, scope: Scope, at: Place) -> None:
        if at.tensor:
            return
        if at.in_set:
            self.error("DPC402", e, "sets cannot nest", hint="write one flat set of values")
        if not e.items:
            self.error("DPC402", e, "empty set: a choice needs at least one value")
        if len(e.items) > limits.MAX_SET:
            self.error(limits.CODE, e, f"a set of {len(e.items):,} values is over the "
                       f"limit of {limits.MAX_SET:,}",
                       hint="dpcdsl.limits.MAX_SET sets this limit")
            return
        super().visit_SetLit(e, scope, at)
        flat = [repr(v) for i in e.items for v in values(i, scope)]
        flat += [print_expr(r) for r in (resolve(i, scope) for i in e.items)  # widths
                 if isinstance(r, ir.IRNode) and any(isinstance(n, ir.ChannelsOf)
                                                      for n in r.walk())]
        if len(flat) != len(set(flat)):
            self.error("DPC402", e, "a set lists the same value twice",
                       hint="each value of a choice must be distinct")

    def visit_Arith(self, e: ir.Arith, scope: Scope, at: Place) -> None:
        """Integers on both sides, and no division by 0."""
        if at.tensor:
            return
        before = len(self.diags)
        super().visit_Arith(e, scope, at)
        if len(self.diags) > before or not _names_known(e, scope):
            return
        for side in (e.left, e.right):
            bad = next((v for v in values(side, scope) if not integer(v)), None)
            if bad is not None:
                self.error("DPC401", side, f"arithmetic takes integers, got {show_value(bad)}",
                           hint="+, -, * and // work on integers (channels, kernels, "
                                "rates)")
                return
        if e.op == "//" and 0 in values(e.right, scope):
            self.error("DPC401", e.right, "division by 0")

    def visit_ChannelsOf(self, e: ir.ChannelsOf, scope: Scope, at: Place) -> None:
        """A width stands where an integer may: an argument of kind int or natural, a
        cell's parameter, arithmetic, a `let`. Its value is known only when the cell is
        built, which checks it against the argument then."""
        if at.arg is not None and at.arg.kind not in ("int", "natural", "any"):
            self.error("DPC401", e, f"{at.func}({at.arg.name} = ...): "
                       f"{e.tensor.id}.channels is an integer, but `{at.arg.name}` takes "
                       f"{at.arg.expects}")
        super().visit_ChannelsOf(e, scope, at)

    # ------------------------------------------------------------------ arguments
    def visit_Kwarg(self, kw: ir.Kwarg, scope: Scope, at: Place) -> None:
        arg = at.arg
        if at.tensor or arg is None:
            super().visit_Kwarg(kw, scope, at)
        elif arg.kind == "any":
            super().visit_Kwarg(kw, scope, at)
            if at.func in self.p.cells:  # as strict as the ops the cell passes it to
                self.passed_value(kw, scope, at.func)
        else:
            self.typed_value(kw.value, scope, at)

    def typed_value(self, e: Any, scope: Scope, at: Place) -> None:
        """``e`` is the value of ``at.arg``; every value it can take must fit the kind."""
        assert at.arg is not None
        arg, where = at.arg, f"{at.func}({at.arg.name} = ...)"
        if arg.kind == "word":  # an unknown word: name the words the argument takes
            for name in [n for n in e.walk() if isinstance(n, ir.Name)]:
                if name.id not in scope.names and name.id not in WORDS \
                        and name.id not in scope.later:
                    hint = did_you_mean(name.id, arg.words)
                    self.error("DPC401", name, f"{where}: expected one of "
                               f"{', '.join(arg.words)}, got '{name.id}'.{hint}".rstrip("."))
                    return
        before = len(self.diags)
        self.visit(e, scope, at)
        if len(self.diags) > before or not _names_known(e, scope):
            return  # what is wrong with the text is said; its values are not known
        for v in values(e, scope):
            problem = arg.problem(v)
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

    def passed_value(self, kw: ir.Kwarg, scope: Scope, cell: str) -> None:
        """A value passed to a cell's parameter meets the kind and checks of every op
        argument the cell (or a cell it calls) gives that parameter to."""
        for op, arg in self.param_uses(cell).get(kw.name, []):
            for v in values(kw.value, scope):
                problem = arg.problem(v)
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
        for c in calls(cell.body):
            for kw in c.kwargs:
                if c.func in OPS:
                    self._op_uses(c, kw, params, uses)
                elif c.func in self.p.cells and isinstance(kw.value, ir.Name) \
                        and kw.value.id in params:
                    uses.setdefault(kw.value.id, []).extend(
                        self.param_uses(c.func).get(kw.name, []))
        self._uses[name] = uses
        return uses

    @staticmethod
    def _op_uses(c: ir.Call, kw: ir.Kwarg, params: set[str],
                 uses: dict[str, list[tuple[str, Arg]]]) -> None:
        """The parameters among ``params`` that the op argument ``kw`` reads."""
        arg = OPS[c.func].arg(kw.name)
        if arg is None or arg.kind in ("tensor", "any"):
            return
        element = Arg(arg.name, "int", check=arg.check) if arg.kind == "pair" else arg
        parts = kw.value.items if isinstance(kw.value, ir.Tuple) else (kw.value,)
        for part in parts:
            if isinstance(part, ir.Name) and part.id in params:
                uses.setdefault(part.id, []).append(
                    (c.func, element if part is not kw.value else arg))

    def validate(self, e: ir.Call, scope: Scope, spec: OpSpec) -> None:
        """The op's own checks across its arguments (its ``validate`` rule)."""
        if spec.validate is None:
            return
        given = {kw.name: values(kw.value, scope) for kw in e.kwargs
                 if getattr(spec.arg(kw.name), "kind", "tensor") != "tensor"}
        for problem in spec.validate(given, uniform(self.size)):
            kw = e.kwarg(problem.arg) if problem.arg is not None else None
            self.error("DPC403", kw if kw is not None else e, problem.message, hint=problem.hint,
                       severity=problem.severity)


def _names_known(e: Any, scope: Scope) -> bool:
    """Does every name in the value ``e`` stand for something (the names pass says what
    is wrong with one that does not)?"""
    return all(n.id in WORDS or n.id in scope.names for n in e.walk() if isinstance(n, ir.Name))


__all__ = ["Values"]
