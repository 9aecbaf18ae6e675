# syntax=docker/dockerfile:1.7
# The gateway and the worker: one image, `sllen gateway` (default) or `sllen worker`.
# Build from the repository root:  docker build -f docker/service.Dockerfile -t sllen-service .
# Only pyproject's base dependencies: no torch, no ONNX Runtime, no Triton (those live elsewhere).
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY docker/constraints.txt /src/constraints.txt
# Dependencies first (every version pinned): this layer is rebuilt only when the pins change.
RUN /opt/venv/bin/pip install -r constraints.txt
COPY pyproject.toml README.md /src/
COPY service /src/service
# No build isolation: the project is built with the pinned setuptools already in the venv.
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation . \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="sllen-service" \
      org.opencontainers.image.description="SLLEN low-light enhancement: gateway and worker"
# A fixed numeric uid/gid so Kubernetes can check runAsNonRoot without a name lookup.
RUN groupadd --system --gid 10001 sllen \
    && useradd --system --uid 10001 --gid sllen --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin sllen
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SLLEN_HOST=0.0.0.0 \
    SLLEN_PORT=8000 \
    SLLEN_WORKER_METRICS_PORT=9100 \
    HEALTHCHECK_URL=http://127.0.0.1:8000/healthz
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000 9100
# The gateway answers /healthz; a worker container sets HEALTHCHECK_URL to its metrics port.
HEALTHCHECK --interval=15s --timeout=4s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen(os.environ['HEALTHCHECK_URL'], timeout=3)"]
ENTRYPOINT ["sllen"]
CMD ["gateway"]
