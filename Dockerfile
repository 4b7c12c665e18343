# pandadoc-proxy image. Build: docker build -t pandadoc-proxy .
# Run (needs a Redis; see docker-compose.yml and docs/deploying.md):
#   docker run --env-file deploy/.env -e REDIS_URL=redis://redis-host:6379/0 -p 8080:8080 pandadoc-proxy
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the project's wheel and the wheels of everything it depends on -------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
RUN pip wheel --wheel-dir /wheels .

# --- runtime: the wheels installed, no build tools, no sources -------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The wheels are the ones just built, offline (--no-index): their versions are fixed already.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels pandadoc-proxy \
 && groupadd --system --gid 10001 pandadoc-proxy \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin pandadoc-proxy

# The container configuration: every secret in it is a ${VAR} read from the environment.
# Mount another file over it, or point PANDADOC_PROXY_CONFIG elsewhere, to change it.
COPY deploy/proxy.yaml /etc/pandadoc-proxy/proxy.yaml
ENV PANDADOC_PROXY_CONFIG=/etc/pandadoc-proxy/proxy.yaml \
    PROXY_PORT=8080

# Numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080

# Liveness only (the process serves). Python itself, since slim images have no curl; proxies
# from the environment are bypassed so the probe always reaches this container.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:%s/_proxy/health' % os.environ.get('PROXY_PORT', '8080'), timeout=4)"]

# SIGTERM (Docker's default stop signal) closes the listener and lets requests in flight finish
# for up to 30 s; give the container longer than that to stop (stop_grace_period in compose,
# terminationGracePeriodSeconds in Kubernetes).
# Workers: one per CPU the container may use (`docker run --cpus 2` gives 2; without --cpus,
# every core of the host, about 60 MB each). docker-compose.yml and deploy/kubernetes run one
# per container and scale with replicas; append `--workers N` to the command to choose.
ENTRYPOINT ["pandadoc-proxy"]
CMD ["serve", "--config", "/etc/pandadoc-proxy/proxy.yaml"]
