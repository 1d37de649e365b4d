"""The PyTorch backend of dpcdsl, registered as ``torch`` under the entry-point group
``dpcdsl.backends``: cells compile to readable, standalone ``nn.Module`` source."""

from dpcdsl_torch._emit import (
    BN_EPS,
    BN_MOMENTUM,
    LAYERS,
    LOWERINGS,
    build,
    class_name,
    emit,
    source_of,
)
from dpcdsl_torch._runtime import forward, set_threads
from dpcdsl_torch._weights import export_weights, import_weights, load_weights, save_weights
from dpcdsl_torch.model import Backbone, SegmentationModel, TimmBackbone, TinyBackbone, backbone
from dpcdsl_torch.proxy import ProxyHead, feature_extractor, proxy_steps
from dpcdsl_torch.train import evaluate_run, load_run
from dpcdsl_torch.train import train as train_model

name = "torch"
#: the default backend where several are installed (the highest priority wins)
priority = 10
lowerings = LOWERINGS

__all__ = [
    "Backbone",
    "BN_EPS",
    "BN_MOMENTUM",
    "LAYERS",
    "LOWERINGS",
    "SegmentationModel",
    "TimmBackbone",
    "TinyBackbone",
    "backbone",
    "build",
    "class_name",
    "emit",
    "evaluate_run",
    "export_weights",
    "forward",
    "import_weights",
    "load_run",
    "load_weights",
    "lowerings",
    "name",
    "priority",
    "ProxyHead",
    "feature_extractor",
    "proxy_steps",
    "save_weights",
    "set_threads",
    "source_of",
    "train_model",
]
