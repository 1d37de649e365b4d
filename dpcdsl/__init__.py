"""dpcdsl: a language, compiler and search engine for multi-scale dense-prediction
heads (ASPP, the Dense Prediction Cell).

The user surface is re-exported here; no name here shadows a submodule. The core
imports no deep-learning framework; backends load on first use.

>>> import dpcdsl
>>> space = dpcdsl.Space.from_file("examples/dpc_paper.dpc")
>>> space.count()
418414128120
"""

from dpcdsl.backends import compile as compile
from dpcdsl.backends import compile_space as compile_space
from dpcdsl.backends import emit as emit
from dpcdsl.deploy import export as export
from dpcdsl.deploy import latency as latency
from dpcdsl.errors import Diagnostic as Diagnostic
from dpcdsl.errors import DpcError as DpcError
from dpcdsl.lang import heads as heads
from dpcdsl.lang.analysis import CostReport as CostReport
from dpcdsl.lang.analysis import cost as cost
from dpcdsl.lang.analysis import infer_channels as infer_channels
from dpcdsl.lang.checker import check as check
from dpcdsl.lang.checker import check_file as check_file
from dpcdsl.lang.flat import Cell as Cell
from dpcdsl.lang.printer import format_module as format
from dpcdsl.lang.program import Program as Program
from dpcdsl.lang.program import load as load
from dpcdsl.lang.program import load_text as load_text
from dpcdsl.lang.space import Space as Space
from dpcdsl.lang.space import count as count
from dpcdsl.lang.syntax import parse as parse
from dpcdsl.ops import OPS as OPS
from dpcdsl.ops import OpSpec as OpSpec
from dpcdsl.ops import register as register_op

__version__ = "0.1.0"

__all__ = [
    "OPS",
    "Cell",
    "CostReport",
    "Diagnostic",
    "DpcError",
    "OpSpec",
    "Program",
    "Space",
    "check",
    "check_file",
    "compile",
    "compile_space",
    "cost",
    "count",
    "emit",
    "export",
    "format",
    "heads",
    "infer_channels",
    "latency",
    "load",
    "load_text",
    "parse",
    "register_op",
]
