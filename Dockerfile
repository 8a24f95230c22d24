# syntax=docker/dockerfile:1

# --- builder: the locked runtime dependencies and the medrec package, in a venv -----------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
COPY requirements.lock ./
RUN pip install --upgrade pip \
 && pip install -r requirements.lock

# The package is installed in editable mode on purpose: the code stays at /app, beside
# alembic.ini and alembic/ (app/data/migrations.py finds them relative to the package), and the
# final stage puts the very same files at the very same path.
COPY pyproject.toml alembic.ini ./
COPY alembic/ alembic/
COPY app/ app/
COPY models/ models/
COPY resolvers/ resolvers/
COPY schema/ schema/
RUN pip install --no-deps -e .

# --- runtime --------------------------------------------------------------------------------------
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN groupadd --system --gid 10001 medrec \
 && useradd --system --uid 10001 --gid medrec --create-home --home-dir /home/medrec \
        --shell /usr/sbin/nologin medrec

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Owned by root and not writable by the service user.
COPY alembic.ini ./
COPY alembic/ alembic/
COPY app/ app/
COPY models/ models/
COPY resolvers/ resolvers/
COPY schema/ schema/
# Byte-code compiled now, as root: the service user cannot write it, and workers start faster.
RUN python -m compileall -q app models resolvers schema alembic

USER medrec

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4); sys.exit(0 if r.status == 200 else 1)"]

ENTRYPOINT ["medrec"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
