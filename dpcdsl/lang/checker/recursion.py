"""The recursion pass: a cell that calls itself has a depth bound within the limit and
a way through that stops; cells do not call each other in a cycle; and cells inlined
inside cells nest no deeper than the limit."""

from __future__ import annotations

from dpcdsl import limits
from dpcdsl.lang import ir
from dpcdsl.lang.checker._base import Pass, Scope, calls, calls_closure

RECURSION_NEEDS_DEPTH = (
    "write the bound after the parameters, e.g. `cell {name}({params}) depth 4 {{`"
)
NO_BASE_CASE = (
    "give one_of(...) an option that does not call '{name}', so the recursion can stop"
)


class Recursion(Pass):
    def visit_Module(self, module: ir.Module, top: Scope) -> None:
        for cell in self.p.cells.values():
            self.visit(cell, top)
        self.nesting()

    def visit_CellDef(self, cell: ir.CellDef, top: Scope) -> None:
        """Reads the cell's calls, not its statements one by one."""
        if cell.depth is not None and cell.depth > limits.MAX_DEPTH:
            self.error(limits.CODE, cell, f"depth {cell.depth} is over the limit of "
                       f"{limits.MAX_DEPTH}", hint="dpcdsl.limits.MAX_DEPTH sets this limit")
        own = [c for c in calls(cell.body) if c.func == cell.name]
        if own and cell.depth is None:
            params = ", ".join(p.name for p in cell.inputs)
            self.error("DPC504",
                       own[0], f"cell '{cell.name}' calls itself but has no depth bound",
                       hint=RECURSION_NEEDS_DEPTH.format(name=cell.name, params=params))
        if own and not _can_stop(cell.body, cell.name):
            self.error("DPC504", cell, f"recursive cell '{cell.name}' has no base case: every "
                       "way through it calls itself again",
                       hint=NO_BASE_CASE.format(name=cell.name))
        for c in calls(cell.body):
            other = self.p.cells.get(c.func)
            if other is not None and other is not cell and \
                    any(d.func == cell.name for d in calls_closure(other, self.p)):
                self.error("DPC504", c, f"cells '{cell.name}' and '{c.func}' call each other",
                           hint="only a cell calling itself (with a depth bound) may recurse")

    def nesting(self) -> None:
        """Cells inlined inside cells, a recursive one counting its depth bound, nest at
        most :data:`dpcdsl.limits.MAX_CELL_NESTING` deep: each level is a level of the
        walks that count and build."""
        levels: dict[str, int] = {}

        def level(name: str, path: tuple[str, ...]) -> int:
            if name in levels:
                return levels[name]
            cell = self.p.cells[name]
            inner = [level(c.func, (*path, name)) for c in calls(cell.body)
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


def _can_stop(body: tuple[object, ...], name: str) -> bool:
    """Can the body be built without calling ``name``?"""

    def ok(e: object) -> bool:
        if isinstance(e, ir.Call):
            return e.func != name and all(ok(a) for a in (*e.args, *e.kwargs))
        if isinstance(e, ir.Kwarg):
            return ok(e.value)
        if isinstance(e, ir.OneOf):
            return any(ok(o) for o in e.options) and all(ok(a) for a in e.apply or ())
        return True

    return all(ok(s.value) for top in body for s in top.walk()  # type: ignore[attr-defined]
               if isinstance(s, ir.Assign | ir.Return | ir.Let))


__all__ = ["NO_BASE_CASE", "RECURSION_NEEDS_DEPTH", "Recursion"]
