"""The language: from ``.dpc`` text to architectures.

``syntax`` parses text (``grammar/dpc.lark``) into the surface IR (``ir``, on the node
base of ``_node``); ``program`` resolves imports into one namespace; ``checker`` runs
its passes over it; ``printer`` formats it back to text. ``space`` counts, samples,
encodes and mutates a cell's choices (``_expand`` is the walk behind it), giving flat
cells (``flat``), whose tensors and costs ``analysis`` infers. ``heads`` is the
library of heads by name (its files: ``_library``).
"""
