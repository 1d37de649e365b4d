"""Installing a package the way pip leaves it on disk, for the tests of what other
packages plug in: the package's module and its distribution's metadata, with its entry
points, in a folder that goes on the Python path."""

from __future__ import annotations

import textwrap
from pathlib import Path

#: an op plugin: ``scale(x, factor)``, with its lowering in both backends
SCALE_PLUGIN = textwrap.dedent('''
    """A dpcdsl op plugin: scale(x, factor) multiplies every element by a constant."""
    from dpcdsl.compiler import codegen
    from dpcdsl.ops import Arg, OpSpec

    OPS = [OpSpec("scale", 1, 1, (Arg("factor", "float", 1.0, doc="the multiplier"),),
                  "multiplies every element by a constant",
                  label=lambda a: f"scale x{a['factor']:g}", color="#e0d0f0",
                  example="scale(x, factor = 0.5)")]

    _SCALE = codegen.expression(lambda ins, a: f"{ins[0]} * {a['factor']!r}")


    def lowerings(backend):
        return {"scale": _SCALE} if backend in ("torch", "jax") else {}
''')


def install(site: Path, module: str, source: str, group: str, entry: str) -> Path:
    """The package ``module`` (its ``__init__`` is ``source``), registered under the
    entry-point ``group`` as ``entry``, installed in the folder ``site``."""
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(source)
    dist = module.replace("_", "-")
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry} = {module}\n")
    return site


#: every architecture scales its input: a trial that trains ran the plugin's op
SCALED_SPACE = """
cell scaled(x, channels = 16) {
  a = scale(x, factor = {0.25, 0.5, 2.0, 4.0})
  return conv(concat(a, x), kernel = {1, 3})
}
"""


def install_scale_plugin(site: Path) -> Path:
    """The op plugin ``scale`` (the package ``dpcdsl_scale``), installed in ``site``."""
    return install(site, "dpcdsl_scale", SCALE_PLUGIN, "dpcdsl.ops", "scale")
