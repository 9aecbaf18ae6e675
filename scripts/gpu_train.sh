#!/usr/bin/env bash
# Train several configs at once on one lent GPU (each a process; a small net's step is
# launch-bound, so processes fill the GPU where one alone would leave it idle).
#   bash scripts/gpu_train.sh configs/gpu_*.json configs/experiments/gpu_*.json
# Env: DATA (a packed copy from `python -m sllen.pack`, default .gpu_data), RUNS (where
# runs/<config name>/ go, default /tmp/gpu_runs), MINUTES and DEVICE override the configs.
set -u
DATA=${DATA:-.gpu_data}
RUNS=${RUNS:-/tmp/gpu_runs}
PYTHON=${PYTHON:-python3}
pids=()
for cfg in "$@"; do
    name=$(basename "$cfg" .json)
    mkdir -p "$RUNS/$name"
    PYTHONUNBUFFERED=1 "$PYTHON" -m sllen.train --config "$cfg" --out "$RUNS/$name" \
        --data-root "$DATA" ${MINUTES:+--minutes "$MINUTES"} ${DEVICE:+--device "$DEVICE"} \
        >"$RUNS/$name/stdout.log" 2>&1 &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for cfg in "$@"; do
    name=$(basename "$cfg" .json)
    echo "== $name"; tail -n 3 "$RUNS/$name/stdout.log"
done
exit $status
