#!/usr/bin/env bash
# Build the TensorRT engine for sllen_trt from the committed ONNX, on the GPU that will serve it.
#
#   build_engine.sh [OUT]      OUT defaults to <this dir>/1/model.plan
#
# Engines are only valid for the GPU model and TensorRT version that built them, so the engine is
# cached under a key made of both (plus the ONNX's and the build flags' digests) and rebuilt when
# any of them changes. Concurrent builders of the same key (pods sharing a cache volume) take turns
# on a lock; the engine is written to a temporary file and renamed, so a reader never sees half.
#
# Environment:
#   SLLEN_TRT_ONNX          ONNX to build from (default: ../sllen/1/model.onnx beside this dir)
#   SLLEN_TRT_CACHE_DIR     engine cache (default: /var/cache/sllen-trt); mount a volume to keep it
#   SLLEN_TRT_PROFILES      optimisation profiles, "MIN:OPT:MAX" per profile, each NxHxW
#                           (default below; the count must match config.pbtxt's instance profiles)
#   SLLEN_TRT_WORKSPACE_MIB builder workspace (default 4096)
#   TRTEXEC                 trtexec binary (default: trtexec on PATH, else /usr/src/tensorrt/bin)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/1/model.plan}"
onnx="${SLLEN_TRT_ONNX:-$here/../sllen/1/model.onnx}"
cache_dir="${SLLEN_TRT_CACHE_DIR:-/var/cache/sllen-trt}"
workspace_mib="${SLLEN_TRT_WORKSPACE_MIB:-4096}"

# Supported sizes: H and W from 32 to 4096, batch 1 to max_batch_size (8). Two profiles, so the
# common photo sizes get kernels tuned for them; the second reaches the largest accepted image.
# Format per profile: MIN:OPT:MAX, each NxHxW (the channel dim is always 3).
DEFAULT_PROFILES="
  1x32x32:4x512x768:8x1024x1024
  1x32x32:1x2048x2048:8x4096x4096
"
profiles="${SLLEN_TRT_PROFILES:-$DEFAULT_PROFILES}"

log() { echo "build_engine: $*" >&2; }
die() { log "error: $*"; exit 1; }

find_trtexec() {
  if [[ -n "${TRTEXEC:-}" ]]; then echo "$TRTEXEC"
  elif command -v trtexec >/dev/null 2>&1; then command -v trtexec
  elif [[ -x /usr/src/tensorrt/bin/trtexec ]]; then echo /usr/src/tensorrt/bin/trtexec
  else die "trtexec not found (set TRTEXEC); it ships in the NGC tritonserver image"
  fi
}

# The config is the contract: every profile must reach max_batch_size (Triton refuses an engine
# whose profiles cannot hold a full batch), and there must be as many profiles as it names.
check_profiles() {
  local config="$here/config.pbtxt" max_batch n_config n=0 p n_max
  max_batch="$(sed -n 's/^max_batch_size: *\([0-9]*\).*/\1/p' "$config")"
  n_config="$(grep -o 'profile: *\[[^]]*\]' "$config" | grep -o '"[0-9]*"' | wc -l)"
  for p in $profiles; do
    [[ "$p" =~ ^[0-9]+x[0-9]+x[0-9]+:[0-9]+x[0-9]+x[0-9]+:[0-9]+x[0-9]+x[0-9]+$ ]] \
      || die "bad profile '$p' (want MIN:OPT:MAX, each NxHxW)"
    n_max="${p##*:}"; n_max="${n_max%%x*}"
    [[ "$n_max" == "$max_batch" ]] || die "profile $p: max batch $n_max != max_batch_size $max_batch"
    n=$((n + 1))
  done
  [[ "$n" == "$n_config" ]] || die "$n profiles but config.pbtxt names $n_config"
}

gpu_id() {
  command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found: no GPU visible"
  nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader -i 0 \
    | head -n1 | tr -c 'A-Za-z0-9.\n' '_' | sed 's/_\+/_/g'
}

trt_version() {
  # NGC images set TRT_VERSION; otherwise trtexec prints "[TensorRT v100500]" on every run.
  if [[ -n "${TRT_VERSION:-}" ]]; then echo "$TRT_VERSION"; return; fi
  "$1" --help 2>&1 | grep -o 'TensorRT v[0-9]*' | head -n1 | tr -d ' ' || true
}

shape_flags() {
  local i=0 p min opt max
  for p in $profiles; do
    IFS=: read -r min opt max <<<"$p"
    printf -- '--profile=%d --minShapes=image:%sx3 --optShapes=image:%sx3 --maxShapes=image:%sx3 ' \
      "$i" "$min" "$opt" "$max"
    i=$((i + 1))
  done
}

main() {
  [[ -f "$onnx" ]] || die "no ONNX at $onnx"
  check_profiles
  local trtexec gpu trt flags onnx_sha flags_sha key dir
  trtexec="$(find_trtexec)"
  gpu="$(gpu_id)"
  trt="$(trt_version "$trtexec")"
  [[ -n "$trt" ]] || die "cannot tell the TensorRT version"
  flags="--fp16 --memPoolSize=workspace:${workspace_mib}MiB $(shape_flags)"
  onnx_sha="$(sha256sum "$onnx" | cut -c1-16)"
  flags_sha="$(echo "$flags" | sha256sum | cut -c1-8)"
  key="${gpu}-trt${trt}-onnx${onnx_sha}-flags${flags_sha}"
  dir="$cache_dir/$key"
  mkdir -p "$dir" "$(dirname "$out")"
  (
    flock 9
    if [[ -s "$dir/model.plan" ]]; then
      log "cached engine $key"
    else
      log "building $key (minutes; FP16, profiles: $(echo $profiles))"
      # shellcheck disable=SC2086  # flags is a word list on purpose
      "$trtexec" --onnx="$onnx" --saveEngine="$dir/model.plan.tmp" $flags \
        --timingCacheFile="$cache_dir/timing-${gpu}-trt${trt}.cache" --skipInference \
        >"$dir/build.log" 2>&1 || { tail -n 40 "$dir/build.log" >&2; die "trtexec failed"; }
      mv -f "$dir/model.plan.tmp" "$dir/model.plan"
      log "built $key"
    fi
  ) 9>"$dir/.lock"
  cp -f "$dir/model.plan" "$out.tmp"
  mv -f "$out.tmp" "$out"
  log "engine at $out"
}

main "$@"
