"""Taking what a search finds out of dpcdsl: export to deployment formats (ONNX,
StableHLO) and measured latency on a runtime."""

from dpcdsl.deploy.export import Exported, export, export_run, formats
from dpcdsl.deploy.latency import Latency, latency, runtimes

__all__ = ["Exported", "Latency", "export", "export_run", "formats", "latency", "runtimes"]
