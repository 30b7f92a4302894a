# Parley server image: one image for the `migrate` job and every `parley` process
# (see docker-compose.yml and docs/operations.md).

# Stage 1: the repository minus what must not reach the image. A local .env holds
# PARLEY_SECRET_KEY (docs/operations.md) and deploy/tls/ the proxy's TLS key; .git,
# .venv and var/ are local state.
# Removing them here, in a stage that is not shipped, keeps them out of every
# layer of the final image.
FROM python:3.11-slim AS source
WORKDIR /src
COPY . .
RUN rm -rf .env .git .venv var deploy/tls client_web/node_modules build ./*.egg-info \
    && find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Stage 2: the image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Node.js and npm from Debian: used to install the browser dependencies
# (socket.io-client) declared in client_web/package.json.
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY --from=source /src /app

# `npm ci` installs exactly what client_web/package-lock.json pins.
RUN pip install . \
    && npm ci --prefix client_web \
    && npm cache clean --force

# migrations/ and client_web/ are not package data, so the code must run from the
# source tree next to them: put /app ahead of site-packages. WORKDIR /app also
# makes relative paths resolve against the repository.
ENV PYTHONPATH=/app

# Run as an unprivileged user. The code under /app stays root-owned (read-only
# for the server); only the state directories are writable. A fresh named volume
# mounted on /data/storage inherits this ownership from the image.
RUN useradd --system --uid 10001 --user-group --home-dir /app \
        --shell /usr/sbin/nologin parley \
    && mkdir -p /data/storage /app/var \
    && chown parley:parley /data/storage /app/var
ENV PARLEY_VAR_DIR=/app/var \
    PARLEY_STORAGE_DIR=/data/storage
USER parley

EXPOSE 8080
CMD ["parley", "serve", "--host", "0.0.0.0", "--port", "8080"]
