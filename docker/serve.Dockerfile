# syntax=docker/dockerfile:1
# heal-swin inference service: onnxruntime + FastAPI, no torch. Multi-stage: build a wheel venv, copy it.
#   docker build -f docker/serve.Dockerfile -t heal-swin-serve .
#   docker run --rm -p 8000:8000 -v "$PWD/models:/models:ro" heal-swin-serve
#   (models/ is a Triton model repository: heal-swin export --out models/<name> writes <name>/config.pbtxt,
#   <name>/model.json and <name>/1/model.onnx)
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY heal_swin ./heal_swin
# Non-editable install of the package with the serve extra only (onnxruntime, FastAPI, uvicorn; no torch).
RUN pip install --no-cache-dir "/src[serve]" \
    && python -c "import sys, heal_swin.serve.app; assert 'torch' not in sys.modules"

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1
RUN groupadd --system --gid 10001 heal \
    && useradd --system --uid 10001 --gid heal --no-create-home --shell /usr/sbin/nologin heal
COPY --from=build /opt/venv /opt/venv
COPY serve/config.yaml /etc/heal-swin/config.yaml
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
VOLUME ["/models"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2).status == 200 else 1)"]
CMD ["heal-swin", "serve", "--config", "/etc/heal-swin/config.yaml", "--model-repository", "/models", "--host", "0.0.0.0", "--port", "8000"]
