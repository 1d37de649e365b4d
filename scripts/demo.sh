#!/usr/bin/env bash
# The main job: an end-to-end search of the DPC paper's space on the proxy task
# (synthetic multi-scale scenes, features cached once, each candidate trained on them),
# after a short tour of the language and the backends. A few minutes on a laptop CPU.
# Sets up .venv first when it is missing. Results land in out/demo (SEARCH_TRIALS
# sets the budget).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-env.sh
DPCC=.venv/bin/dpcc
OUT=${OUT:-out/demo}
mkdir -p "$OUT"

$DPCC check examples/*.dpc
$DPCC tour --examples examples -o "$OUT"
echo "== the paper's search space holds $($DPCC count examples/dpc_paper.dpc) cells; three uniform samples:"
$DPCC sample examples/dpc_paper.dpc -n 3 --seed 0 | tee "$OUT/samples.dpc"
echo "== Table 1 of the paper, the top-1 cell with Xception features (2048 channels):"
$DPCC cost examples/dpc_cityscapes.dpc --in-channels 2048 --size 65x129
$DPCC import-deeplab examples/deeplab/dense_prediction_cell_branch5_top1_cityscapes.json \
  --name dpc_cityscapes -o "$OUT/dpc_cityscapes.dpc"
$DPCC export-deeplab "$OUT/dpc_cityscapes.dpc" -o "$OUT/dpc_cityscapes.json"
$DPCC viz examples/dpc_cityscapes.dpc -o "$OUT/dpc_cityscapes.png"
echo "== the top-1 cell compiled to standalone PyTorch source, and a model built around it:"
$DPCC compile examples/dpc_cityscapes.dpc --backend torch --in-channels 2048 \
  -o "$OUT/dpc_cityscapes_torch.py"
.venv/bin/python examples/segmentation_model.py "$OUT"
echo "== the proxy task: features cached once, then ASPP trained on them (synthetic scenes):"
$DPCC cache --task examples/synthetic_task.toml
$DPCC proxy examples/aspp.dpc --task examples/synthetic_task.toml
echo "== the search: the paper's space, efficient random search, ${SEARCH_TRIALS:-12} trials:"
rm -rf "$OUT/search"
$DPCC search examples/dpc_paper.dpc --task examples/demo_task.toml --strategy ers \
  --trials "${SEARCH_TRIALS:-12}" --run-dir "$OUT/search"
echo "== pictures and files are in $OUT; the search's report is $OUT/search/report.html"
