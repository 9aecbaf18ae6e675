#!/usr/bin/env bash
# Start Triton on the one model this deployment serves (SLLEN_TRITON_MODEL, as the worker uses).
# The baked repository (/opt/sllen/model_repository) is read-only; the served repository is
# assembled in SLLEN_TRITON_RUN_DIR (a volume). For sllen_trt the engine is built here, on this
# GPU, or taken from the cache (SLLEN_TRT_CACHE_DIR) when this GPU and TensorRT already built it.
# The ports listen on SLLEN_TRITON_BIND_ADDRESS (default 0.0.0.0: other pods must reach them;
# NetworkPolicy confines who does). Model control (load/unload at runtime) stays off unless
# SLLEN_TRITON_MODEL_CONTROL=true: the one model loads at start-up and nothing can unload it.
# Extra arguments go to tritonserver.
set -euo pipefail

src="${SLLEN_TRITON_SOURCE:-/opt/sllen/model_repository}"
model="${SLLEN_TRITON_MODEL:-sllen}"
run="${SLLEN_TRITON_RUN_DIR:-/var/run/sllen}/models"
bind="${SLLEN_TRITON_BIND_ADDRESS:-0.0.0.0}"

case "${SLLEN_TRITON_MODEL_CONTROL:-false}" in
  true | 1) control=(--model-control-mode=explicit --load-model="$model") ;;
  false | 0) control=(--model-control-mode=none) ;;
  *)
    echo "sllen-triton: SLLEN_TRITON_MODEL_CONTROL must be true or false, got '$SLLEN_TRITON_MODEL_CONTROL'" >&2
    exit 2
    ;;
esac

rm -rf "$run"
mkdir -p "$run"
case "$model" in
  sllen)
    cp -r "$src/sllen" "$run/sllen"
    # ONNX Runtime's default thread count is the node's cores, not this container's CPU limit;
    # under a CFS quota the extra threads only get throttled. The pod passes its limit.
    if [[ -n "${SLLEN_ORT_THREADS:-}" ]]; then
      if ! [[ "$SLLEN_ORT_THREADS" =~ ^[0-9]+$ ]]; then
        echo "sllen-triton: SLLEN_ORT_THREADS must be a whole number, got '$SLLEN_ORT_THREADS'" >&2
        exit 2
      fi
      sed -i -E "s/(key: \"intra_op_num_threads\", value: \{ string_value: \")[0-9]+/\1$SLLEN_ORT_THREADS/" \
        "$run/sllen/config.pbtxt"
    fi
    ;;
  sllen_trt)
    mkdir -p "$run/sllen_trt/1"
    cp "$src/sllen_trt/config.pbtxt" "$run/sllen_trt/config.pbtxt"
    SLLEN_TRT_ONNX="$src/sllen/1/model.onnx" \
      "$src/sllen_trt/build_engine.sh" "$run/sllen_trt/1/model.plan"
    ;;
  *)
    echo "sllen-triton: unknown SLLEN_TRITON_MODEL '$model' (sllen or sllen_trt)" >&2
    exit 2
    ;;
esac

# The served repository holds only "$model", so mode none loads exactly it.
exec tritonserver \
  --model-repository="$run" \
  "${control[@]}" \
  --strict-readiness=true \
  --exit-on-error=true \
  --http-address="$bind" --grpc-address="$bind" --metrics-address="$bind" \
  --http-port=8000 --grpc-port=8001 --metrics-port=8002 \
  --log-format=ISO8601 \
  "$@"
