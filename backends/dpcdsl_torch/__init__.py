"""The PyTorch backend of dpcdsl, registered as ``torch`` under the entry-point group
``dpcdsl.backends``: cells compile to readable, standalone ``nn.Module`` source."""

from dpcdsl_torch._emit import BN_EPS, BN_MOMENTUM, build, class_name, emit, source_of
from dpcdsl_torch._weights import export_weights, import_weights, load_weights, save_weights
from dpcdsl_torch.model import Backbone, SegmentationModel, TimmBackbone, TinyBackbone, backbone
from dpcdsl_torch.proxy import ProxyHead, feature_extractor, proxy_steps

name = "torch"

__all__ = [
    "Backbone",
    "BN_EPS",
    "BN_MOMENTUM",
    "SegmentationModel",
    "TimmBackbone",
    "TinyBackbone",
    "backbone",
    "build",
    "class_name",
    "emit",
    "export_weights",
    "import_weights",
    "load_weights",
    "name",
    "ProxyHead",
    "feature_extractor",
    "proxy_steps",
    "save_weights",
    "source_of",
]
