"""The names pass: what each name is and where it is defined, and the shape of the
statements that define them. Undefined names and names used before their
definition, names defined twice or taken from the language, the names the expander
makes up, a cell's inputs and parameters, its ``return``, its repeats and loops."""

from __future__ import annotations

from typing import Any

from dpcdsl import limits
from dpcdsl.errors import did_you_mean
from dpcdsl.lang import ir
from dpcdsl.lang.checker._base import Block, Pass, Place, Scope
from dpcdsl.lang.levels import INPUT_STRIDES, parse_level
from dpcdsl.ops import OPS, WORDS

#: words of the language that read as names in some places but mean something else
#: (a keyword that starts an item, a built-in value), so no node may take them
RESERVED = ("one_of", "earlier", "true", "false", "import", "cell")



class Names(Pass):
    # ------------------------------------------------------------------ cells
    def visit_CellDef(self, cell: ir.CellDef, top: Scope) -> None:
        self.signature(cell)
        super().visit_CellDef(cell, top)
        self.returns(cell)
        self.generated_names(cell)

    def signature(self, cell: ir.CellDef) -> None:
        """Inputs first, each read at a backbone stride if any; parameters after."""
        seen: set[str] = set()
        seen_default = False
        for prm in cell.params:
            if prm.name in seen:
                self.error("DPC203", prm, f"parameter '{prm.name}' is declared twice")
            seen.add(prm.name)
            if prm.level is not None and prm.default is not None:
                self.error("DPC501", prm, f"'{prm.name}' has a default, so it is a parameter; "
                           "only a tensor input reads features at a stride",
                           hint=f"write `{prm.name} = ...` without `@`")
            elif prm.level is not None:
                try:
                    parse_level(prm.level)
                except ValueError as e:
                    self.error("DPC501", prm, f"input '{prm.name}' @ {prm.level}: {e}")
            if prm.default is not None:
                seen_default = True
                continue
            if prm.name == "channels":
                self.error("DPC501", prm, "'channels' is the cell's channel count, not a "
                           "tensor input", hint="give it a value (`channels = 256`), and "
                           "name the input otherwise")
            if seen_default:
                self.error("DPC501", prm, f"formal input '{prm.name}' comes after a parameter "
                           "with a default", hint="list the tensor inputs first")
        if not cell.inputs:
            self.error("DPC501", cell, f"cell '{cell.name}' has no tensor input",
                       hint=f"write e.g. `cell {cell.name}(x, ...)`")

    def returns(self, cell: ir.CellDef) -> None:
        """One ``return``, the last statement of the cell."""
        body = cell.body
        returns = [s for s in body if isinstance(s, ir.Return)]
        if not returns:
            self.error("DPC502", cell, f"cell '{cell.name}' has no `return`",
                       hint="end the cell with `return <expression>`")
        elif len(returns) > 1 or body[-1] is not returns[0]:
            extra = returns[1] if len(returns) > 1 else body[body.index(returns[0]) + 1]
            self.error("DPC502", extra, "nothing may follow the `return` of a cell")

    def generated_names(self, cell: ir.CellDef) -> None:
        """A name written in the cell may not fall in the names the expander makes up for
        another statement: nested ops and inlined cells of ``y = ...`` are ``y_<op>``,
        ``y_<statement>``; the ``return`` is ``out``; a repeat's branch ``b2`` is ``b2``
        and what its body holds ``b2_<name>``. A clash would only show when a sample
        that makes both names is built."""
        written, owners = self.names_made(cell)
        for name, st in written:
            for prefix, what, owner in owners:
                if owner is not st and _made_for(name, prefix, owner):
                    self.error("DPC203", st, f"'{name}' is a name made up for the nodes of "
                               f"{what}, which would clash with it",
                               hint=f"rename '{name}': names of the form {prefix}... belong "
                                    f"to {what}")
                    break

    def names_made(self, cell: ir.CellDef) -> tuple[list[tuple[str, Any]],
                                                    list[tuple[str, str, Any]]]:
        """The names the cell writes, with their statements, and the prefixes of the
        names the expander makes up: (prefix, what makes them, statement)."""
        owners: list[tuple[str, str, Any]] = []
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
            elif isinstance(st, ir.For):  # item i's node for `x = ...` is x<i>
                for t in st.body:
                    if isinstance(t, ir.Assign):
                        written.append((t.target, t))
                        owners.append((t.target, f"the loop's '{t.target}'", st))
        return written, owners

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

    # ------------------------------------------------------------------ statements
    def visit_Let(self, s: ir.Let, scope: Scope, block: Block) -> None:
        self.define(s.name, s, scope)
        super().visit_Let(s, scope, block)

    def visit_Assign(self, s: ir.Assign, scope: Scope, block: Block) -> None:
        self.define(s.target, s, scope)
        super().visit_Assign(s, scope, block)

    def visit_Return(self, s: ir.Return, scope: Scope, block: Block) -> None:
        if block.repeat is not None:
            self.error("DPC502", s, "`return` belongs at the end of a cell, not in a repeat",
                       hint=f"assign the branch instead: `{block.repeat.name} = ...`")
        elif block.loop is not None:
            self.error("DPC502", s, "`return` belongs at the end of a cell, not in a loop",
                       hint="assign a name in the loop, and return it after the loop")
        super().visit_Return(s, scope, block)

    def visit_For(self, s: ir.For, scope: Scope, block: Block) -> None:
        """Its names, distinct and new; items that give each name one part, each a name
        of a tensor or a value, of one kind across the items; no loop or repeat around
        it or in its body."""
        if block.repeat is not None or block.loop is not None or \
                any(isinstance(t, ir.Repeat | ir.For) for t in s.body):
            self.error("DPC505", s, "loops and repeats cannot nest in a loop or a repeat",
                       hint="move the inner one into a cell, and call the cell")
        if len(s.items) > limits.MAX_REPEAT:
            self.error(limits.CODE, s, f"a loop over {len(s.items)} items is over the limit "
                       f"of {limits.MAX_REPEAT}", hint="dpcdsl.limits.MAX_REPEAT sets this limit")
        for i, name in enumerate(s.names):
            if name in s.names[:i]:
                self.error("DPC203", s, f"the loop names '{name}' twice")
            elif name in scope.names:
                self.error("DPC203", s, f"the loop's name '{name}' is already defined",
                           hint="name the loop's variable otherwise")
            elif name in OPS or name in WORDS or name in RESERVED:
                self.error("DPC204", s, f"'{name}' is a built-in name; pick another")
        self.loop_items(s, scope)
        super().visit_For(s, scope, block)

    def loop_items(self, s: ir.For, scope: Scope) -> None:
        """Each item gives each name one part, a name of a tensor or a value, and a name
        is of one kind in every item."""
        kinds: dict[str, str] = {}
        for item in s.items:
            parts = s.parts(item)
            if len(parts) != len(s.names):
                self.error("DPC505", item, f"each item of the loop gives its {len(s.names)} "
                           f"names ({', '.join(s.names)}) a part each; this one has "
                           f"{len(parts)}", hint=f"write the items as ({', '.join(s.names)})")
                continue
            for name, part in zip(s.names, parts):
                if isinstance(part, ir.Call | ir.OneOf | ir.Earlier):
                    self.error("DPC505", part, "an item of a loop is a name or a value, not "
                               "an expression that makes a tensor",
                               hint="assign the tensor a name before the loop")
                    continue
                bound = scope.names.get(part.id) if isinstance(part, ir.Name) else None
                kind = "tensor" if bound is not None and bound.kind != "value" else "value"
                if kinds.setdefault(name, kind) != kind:
                    self.error("DPC505", part, f"the loop's '{name}' is a {kinds[name]} for "
                               f"one item and a {kind} for another",
                               hint="give a name the same kind in every item")

    def visit_Repeat(self, s: ir.Repeat, scope: Scope, block: Block) -> None:
        if s.count < 1:
            self.error("DPC503", s, "a repeat needs at least one branch")
        if s.count > limits.MAX_REPEAT:
            self.error(limits.CODE, s, f"repeat {s.count} is over the limit of "
                       f"{limits.MAX_REPEAT} branches",
                       hint="dpcdsl.limits.MAX_REPEAT sets this limit")
        self.define(s.name, s, scope)
        for i in range(min(s.count, limits.MAX_REPEAT)):
            if f"{s.name}{i}" in scope.names:
                self.error("DPC203", s, f"branch name '{s.name}{i}' clashes with an existing name")
        assigns = [t for t in s.body if isinstance(t, ir.Assign) and t.target == s.name]
        if not assigns:
            self.error("DPC503", s, f"the repeat body never assigns its branch '{s.name}'",
                       hint=f"end the body with `{s.name} = ...`")
        elif s.body[-1] is not assigns[0] or len(assigns) > 1:
            self.error("DPC503", assigns[-1], f"assign the branch '{s.name}' once, as the last "
                       "statement of the repeat body")
        if any(isinstance(t, ir.Repeat) for t in s.body):
            self.error("DPC503", s, "repeats cannot nest", hint="move the inner repeat into a cell")
        super().visit_Repeat(s, scope, block)

    def define(self, name: str, node: Any, scope: Scope) -> None:
        if name in scope.local:
            old = scope.names.get(name)
            where = f" (first at line {old.span.line})" if old and old.span else ""
            self.error("DPC203", node, f"'{name}' is defined twice{where}")
        if name in OPS or name in WORDS or name in RESERVED:
            self.error("DPC204", node, f"'{name}' is a built-in name; pick another")
        elif name == "channels" and isinstance(node, ir.Assign | ir.Repeat):
            # every architecture's text declares the cell's width under this name
            self.error("DPC204", node, "'channels' is the cell's width (a parameter of "
                       "every cell, 256 unless given); name the node otherwise")

    # ------------------------------------------------------------------ names
    def visit_Name(self, e: ir.Name, scope: Scope, at: Place) -> None:
        if e.id in scope.names:
            return
        if at.tensor:
            self.undefined(e, scope, ("tensor", "input", "group"))
        elif e.id in WORDS:
            return
        elif e.id in scope.later:
            self.error("DPC202", e, f"'{e.id}' is used before it is defined")
        elif at.arg is not None and at.arg.kind == "word":
            return  # the values pass names the words the argument takes
        else:
            known = [n for n, b in scope.names.items() if b.kind == "value"]
            hint = did_you_mean(e.id, [*known, *WORDS])
            self.error("DPC201", e, f"undefined name '{e.id}'.{hint}".rstrip("."))

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


def _made_for(name: str, prefix: str, owner: Any) -> bool:
    """Is ``name`` among the names made up under ``prefix`` for the statement ``owner``?
    The return's ``out`` and ``out_...``; a repeat's ``b<digit>...``, and a loop's
    ``x<digit>...``; ``y_...``."""
    if not name.startswith(prefix):
        return False
    rest = name[len(prefix):]
    if prefix == "out" and rest and not rest.startswith("_"):
        return False
    return not (isinstance(owner, ir.Repeat | ir.For) and not rest[:1].isdigit())


__all__ = ["INPUT_STRIDES", "RESERVED", "Names"]
