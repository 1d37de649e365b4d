"""dpcdsl: a language, compiler and search engine for multi-scale dense-prediction
heads (ASPP, the Dense Prediction Cell).

The core imports no deep-learning framework; backends load on first use.
"""

from dpcdsl.backends import compile, emit
from dpcdsl.cost import cost
from dpcdsl.program import load, load_text
from dpcdsl.space import Space, count

__version__ = "0.1.0"

__all__ = ["Space", "compile", "cost", "count", "emit", "load", "load_text"]
