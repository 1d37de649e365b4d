"""Every example as a concrete cell with small inputs: spaces give their seed-0 sample."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from dpcdsl.lang import ir
from dpcdsl.lang.space import Space
from tests.conftest import EXAMPLES


@dataclass
class Example:
    name: str
    cell: ir.Cell
    in_channels: dict[str, int]
    sizes: dict[str, tuple[int, int]]

    def inputs(self, batch: int = 2, seed: int = 0) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return [torch.randn(batch, self.in_channels[i], *self.sizes[i], generator=g)
                for i in self.cell.inputs]


def load_example(path_stem: str) -> Example:
    space = Space.from_file(EXAMPLES / f"{path_stem}.dpc")
    cell = space.concrete() if space.is_concrete else space.sample(0)[0]
    if len(cell.inputs) == 2:  # the decoder: context at stride 16, low-level at 4
        chans = {cell.inputs[0]: 32, cell.inputs[1]: 12}
        sizes = {cell.inputs[0]: (5, 7), cell.inputs[1]: (17, 25)}
    else:
        chans = {i: 24 for i in cell.inputs}
        sizes = {i: (17, 13) for i in cell.inputs}
    return Example(path_stem, cell, chans, sizes)


EXAMPLE_NAMES = sorted(p.stem for p in EXAMPLES.glob("*.dpc"))


@pytest.fixture(params=EXAMPLE_NAMES)
def example(request: pytest.FixtureRequest) -> Example:
    return load_example(request.param)
