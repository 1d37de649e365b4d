"""The PyTorch backend of dpcdsl, registered as ``torch`` under the entry-point group
``dpcdsl.backends``: cells compile to readable, standalone ``nn.Module`` source.

PyTorch is imported when a hook is first used, not with the package: choosing the
default backend reads ``name`` and ``priority`` only."""

from __future__ import annotations

from dpcdsl._plugins import lazy_exports

name = "torch"
#: the default backend where several are installed (the highest priority wins)
#: the formats the ``export`` hook writes, with the axes each leaves dynamic (read
#: without importing the framework)
export_formats = {"onnx": ("batch", "height", "width")}
#: the runtimes the ``time_forward`` hook times a forward pass on
latency_runtimes = ("torch", "torch.compile", "onnxruntime")
priority = 10

#: each public name, and the submodule that defines it (under another name for two)
_WHERE: dict[str, tuple[str, str]] = {
    **{n: ("_emit", n) for n in ("BN_EPS", "BN_MOMENTUM", "LAYERS", "LOWERINGS", "build",
                                 "class_name", "emit", "source_of")},
    "lowerings": ("_emit", "LOWERINGS"),
    **{n: ("_runtime", n) for n in ("forward", "set_threads")},
    **{n: ("_export", n) for n in ("export", "load_exported", "time_forward")},
    **{n: ("_weights", n) for n in ("export_weights", "import_weights", "load_weights",
                                    "save_weights")},
    **{n: ("model", n) for n in ("Backbone", "SegmentationModel", "TimmBackbone",
                                 "TinyBackbone", "backbone")},
    **{n: ("proxy", n) for n in ("ProxyHead", "feature_extractor", "proxy_steps")},
    **{n: ("train", n) for n in ("evaluate_run", "load_run")},
    "train_model": ("train", "train"),
    **{n: ("supernet", n) for n in ("Supernet", "compile_space", "supernet_steps")},
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

__all__ = ["export_formats", "latency_runtimes", "name", "priority", *_WHERE]
