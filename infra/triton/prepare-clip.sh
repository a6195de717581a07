#!/bin/sh
# Puts a CLIP ONNX export's two towers into Triton's model repository (docker compose --profile triton).
# The graphs are ~600 MB together and are not committed. Get the export first, on a machine with internet:
#   npx tessera models pull Xenova/clip-vit-base-patch32 --out models/clip
# then run: sh infra/triton/prepare-clip.sh [export folder, default models/clip]
# The export folder stays where it is: Tessera reads its tokenizer (models/clip-triton.yaml, files.tokenizer).
set -eu
export_dir="${1:-models/clip}"
repository="$(dirname "$0")/model_repository"
for tower in text vision; do
  graph="$export_dir/onnx/${tower}_model.onnx"
  if [ ! -f "$graph" ]; then
    echo "missing $graph: pull the export first (npx tessera models pull Xenova/clip-vit-base-patch32 --out $export_dir)" >&2
    exit 1
  fi
  mkdir -p "$repository/clip_$tower/1"
  cp "$graph" "$repository/clip_$tower/1/model.onnx"
  echo "clip_$tower/1/model.onnx <- $graph"
done
