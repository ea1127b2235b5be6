# syntax=docker/dockerfile:1
# heal-swin training image: CUDA torch (from the PyTorch base image) + the train/serve/dev extras.
#   docker build -f docker/train.Dockerfile -t heal-swin-train .
#   docker run --rm --gpus all -v "$PWD/data:/work/data" -v "$PWD/runs:/work/runs" heal-swin-train \
#       heal-swin train --config train/quickstart.yaml
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1
WORKDIR /work
COPY pyproject.toml README.md ./
COPY heal_swin ./heal_swin
COPY train ./train
COPY data ./data
# torch comes from the base image (CUDA build); pip keeps it because it satisfies torch>=2.4.
RUN pip install --no-cache-dir "/work[train,serve]" \
    && python -c "import torch, heal_swin.models; print('torch', torch.__version__)"
RUN groupadd --system --gid 10001 heal \
    && useradd --system --uid 10001 --gid heal --create-home --shell /bin/bash heal \
    && chown -R heal:heal /work
USER 10001:10001
VOLUME ["/work/data", "/work/runs"]
CMD ["heal-swin", "--help"]
