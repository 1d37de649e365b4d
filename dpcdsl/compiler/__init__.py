"""From a concrete cell to what is made of it: the cell at a backbone's output stride
(``rewrite``), its canonical weight names and shapes (``canonical``), the source every
backend's emitter shares (``codegen``), its pictures (``graph``) and the reference
implementation's format (``interop``)."""
