# syntax=docker/dockerfile:1.7
# Triton for SLLEN, from NVIDIA's NGC tritonserver image (Triton 2.51, TensorRT 10.5, trtexec).
# Build from the repository root:  docker build -f docker/triton.Dockerfile -t sllen-triton .
#   SLLEN_TRITON_MODEL=sllen      python backend + ONNX Runtime on model.onnx (CPU)
#   SLLEN_TRITON_MODEL=sllen_trt  TensorRT engine built from the same ONNX at start (GPU, FP16)
# Pin the base by digest in your registry mirror for reproducible builds (nvcr.io tags are
# immutable in practice but not by contract).
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3
FROM ${TRITON_IMAGE}

# The python backend's CPU model runs ONNX Runtime; numpy below 2 for the backend's stub.
RUN pip install --no-cache-dir onnxruntime==1.19.2 numpy==1.26.4 \
    && test -x /usr/src/tensorrt/bin/trtexec

COPY --chmod=0755 docker/triton-entrypoint.sh /usr/local/bin/sllen-triton
COPY model_repository/sllen/config.pbtxt /opt/sllen/model_repository/sllen/config.pbtxt
COPY model_repository/sllen/1/model.py model_repository/sllen/1/ort_options.py \
     model_repository/sllen/1/model.onnx model_repository/sllen/1/model_enhanced.onnx \
     /opt/sllen/model_repository/sllen/1/
COPY model_repository/sllen_trt/config.pbtxt /opt/sllen/model_repository/sllen_trt/config.pbtxt
COPY --chmod=0755 model_repository/sllen_trt/build_engine.sh \
     /opt/sllen/model_repository/sllen_trt/build_engine.sh

ENV SLLEN_TRITON_MODEL=sllen \
    SLLEN_TRITON_RUN_DIR=/var/run/sllen \
    SLLEN_TRT_CACHE_DIR=/var/cache/sllen-trt \
    PATH=/usr/src/tensorrt/bin:$PATH
# The NGC image's unprivileged user (uid 1000). Writable paths are volumes: the assembled model
# repository (SLLEN_TRITON_RUN_DIR), the engine cache, /tmp and /dev/shm.
USER 1000:1000
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=4s --start-period=30m --retries=3 \
  CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=3)"]
ENTRYPOINT ["/opt/nvidia/nvidia_entrypoint.sh", "/usr/local/bin/sllen-triton"]
