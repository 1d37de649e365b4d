"""Weight sharing for one-shot search: the rule that maps every candidate of a space onto
one bank of shared weights (a *supernet*), decided here, once, for every backend.

**The rule.** A weight of a candidate is shared with every other candidate that has, at
the same position, a weight of the same op, role and shape. Its key is

    ``position:op:role:shape``, e.g. ``b2:sepconv:depthwise.weight:2048x1x3x3``

where the position is the node's name in the flat cell (``b2``; names come from the
text, so a branch keeps its name whatever is chosen around it), the role is the
weight's canonical name below the node (:mod:`dpcdsl.compiler.canonical`) and the shape
is PyTorch's. So:

* the rates, grids, activations and other attributes that leave a weight's shape as it
  is share it: a 3x3 separable conv at ``b2`` has one set of weights for its 64 rate
  pairs, a pooling branch one 1x1 projection for its 16 grids (as in single-path
  one-shot search, Guo et al., ECCV 2020);
* the alternatives of a ``one_of`` that are different ops own their weights;
* an input choice costs nothing where the inputs are equally wide; a wider input (the
  backbone's 2048 channels against a branch's 256) needs weights of another shape,
  which are its own.

A candidate's weights are then the bank's, taken by key: extracting a candidate is
reading its canonical names off the bank (:func:`shares`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dpcdsl.compiler.canonical import initial_weights, weights_of
from dpcdsl.errors import DpcError
from dpcdsl.lang import ir
from dpcdsl.lang.analysis import infer_channels
from dpcdsl.lang.space import Space
from dpcdsl.ops import Weight

#: spaces up to this many candidates have their bank found by visiting every candidate
ENUMERATE_LIMIT = 5_000
#: larger spaces: walks that take every option of every choice point they reach, least
#: taken first, then uniform samples, until this many walks in a row add no weight
SETTLED_AFTER = 300
#: at most this many walks, whatever happens
MAX_WALKS = 20_000
#: the most weights a bank may hold; a space that needs more is refused, naming why
MAX_BANK_PARAMS = 2_000_000_000
#: the prefix of a proxy head's cell weights, and its classifier's position
CELL, CLASSIFIER = "cell", "classifier"


def key_of(position: str, op: str, role: str, shape: Iterable[int]) -> str:
    """The bank key of a weight (see the module's rule)."""
    return f"{position}:{op}:{role}:{'x'.join(str(int(s)) for s in shape)}"


def shares(cell: ir.Cell, in_channels: int | Mapping[str, int]) -> dict[str, tuple[str, Weight]]:
    """Canonical name -> (bank key, :class:`~dpcdsl.ops.Weight`), for every weight of
    ``cell``."""
    ops = {n.name: n.op for n in cell.nodes}
    out = {}
    for name, w in weights_of(cell, in_channels).items():
        position, role = name.split(".", 1)
        out[name] = (key_of(position, ops[position], role, w.shape), w)
    return out


def head_shares(cell: ir.Cell, in_channels: int | Mapping[str, int],
                num_classes: int) -> dict[str, tuple[str, Weight]]:
    """:func:`shares` for a proxy head: the cell's weights under ``cell.``, and the 1x1
    classifier's (``classifier.weight``, ``classifier.bias``), shared by every
    candidate of the same output width."""
    out = {f"{CELL}.{k}": v for k, v in shares(cell, in_channels).items()}
    width = infer_channels(cell, in_channels)[cell.output]
    for role, shape in (("weight", (num_classes, width, 1, 1)), ("bias", (num_classes,))):
        out[f"{CLASSIFIER}.{role}"] = (key_of(CLASSIFIER, "conv", role, shape), Weight(shape))
    return out


@dataclass(frozen=True)
class Bank:
    """The shared weights a space needs: key -> :class:`~dpcdsl.ops.Weight`, and how
    they were found (``exact``: from every candidate; else from ``walks`` walks)."""

    weights: Mapping[str, Weight]
    exact: bool
    walks: int

    @property
    def params(self) -> int:
        """Trainable numbers in the bank (running statistics are not)."""
        return sum(w.size for w in self.weights.values() if w.kind != "stat")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: w.shape for k, w in self.weights.items()}

    def describe(self) -> str:
        how = (f"every one of its {self.walks:,} candidates" if self.exact else
               f"{self.walks:,} walks covering every option")
        return f"{len(self.weights):,} shared tensors, {self.params:,} parameters (from {how})"


def bank_of(space: Space, in_channels: int | Mapping[str, int], num_classes: int | None = None,
            seed: int = 0) -> Bank:
    """The bank of ``space``: every shared weight a candidate can use. Exact for spaces
    of at most :data:`ENUMERATE_LIMIT` candidates; larger spaces are walked until
    :data:`SETTLED_AFTER` walks in a row find no new weight (a supernet still makes any
    weight a walk missed when a candidate first needs it)."""
    def of(cell: ir.Cell) -> dict[str, tuple[str, Weight]]:
        return shares(cell, in_channels) if num_classes is None else \
            head_shares(cell, in_channels, num_classes)

    found: dict[str, Weight] = {}
    size = 0

    def add(cell: ir.Cell) -> bool:
        nonlocal size
        new = False
        for key, w in of(cell).values():
            if key in found:
                continue
            found[key], new = w, True
            size += w.size
            if size > MAX_BANK_PARAMS:
                node = key.split(":", 1)[0]
                raise DpcError.at(space.cell_def.span, f"the space of '{space.name}' needs "
                                  f"more than {MAX_BANK_PARAMS:,} shared weights (at node "
                                  f"'{node}', {w.size:,} more for {key})",
                                  hint="share more (fewer distinct widths), or search it "
                                       "without a supernet", sources=space.program.sources,
                                  code="DPC606")
        return new

    n = space.count()
    if n <= ENUMERATE_LIMIT:
        for cell in space.enumerate(ENUMERATE_LIMIT):
            add(cell)
        return Bank(dict(sorted(found.items())), True, n)
    rng = random.Random(seed)
    taken: dict[tuple[str, int], int] = {}

    def least_taken(path: str, counts: list[int]) -> int:
        open_ = [i for i, c in enumerate(counts) if c]
        fewest = min(taken.get((path, i), 0) for i in open_)
        pick = rng.choice([i for i in open_ if taken.get((path, i), 0) == fewest])
        taken[(path, pick)] = taken.get((path, pick), 0) + 1
        return pick

    walks = quiet = 0
    while quiet < SETTLED_AFTER and walks < MAX_WALKS:
        cell, _ = space.decide(least_taken) if walks % 2 == 0 else space.sample(rng)
        walks += 1
        quiet = 0 if add(cell) else quiet + 1
    return Bank(dict(sorted(found.items())), False, walks)


def key_seed(seed: int, key: str) -> int:
    """The seed of one shared weight's initial value: the bank's seed and the key, so a
    weight starts the same whenever and in whichever order it is made."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "little")


def initial_value(key: str, weight: Weight, seed: int) -> Any:
    """A shared weight's seeded initial value, as :func:`~dpcdsl.compiler.canonical.
    initial_weights` draws a candidate's: convs He-normal, norms 1 and 0."""
    role = key.split(":")[2]
    return initial_weights({role: weight.shape}, key_seed(seed, key))[role]


def space_identity(space: Space) -> dict[str, Any]:
    """What a supernet checkpoint must match to be used with a space: its cell, its size
    and its text (standalone and canonical, comments and blank lines left out, so a
    copy of it matches)."""
    from dpcdsl.lang.program import standalone_text

    text = "\n".join(line for line in standalone_text(space.program).splitlines()
                     if line.strip() and not line.lstrip().startswith("#"))
    return {"cell": space.name, "count": str(space.count()),
            "text_sha256": hashlib.sha256(text.encode()).hexdigest()[:16]}


__all__ = ["CELL", "CLASSIFIER", "Bank", "bank_of", "head_shares", "initial_value",
           "key_of", "key_seed", "shares", "space_identity"]
