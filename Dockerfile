# Image of the order-processor API only. The Dapr sidecar, placement, scheduler and Redis
# run as separate containers (see docker-compose.yml), so no Dapr binaries live here.
# The official image by default; `make images` builds a stand-in from Debian's packages for
# machines that cannot reach a registry (docker-compose.yml passes PYTHON_IMAGE).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

# No .pyc clutter in a read-mostly image; unbuffered so logs reach `docker logs` at once.
# JSON log lines (one object per line) for whatever collects the container's output.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOG_FORMAT=json

WORKDIR /srv

# Dependencies first so code edits do not invalidate this layer. --require-hashes makes
# the build fail rather than install anything the lock file did not pin, and --no-deps makes
# pip resolve nothing (an older pip resolves extras of locked packages itself and can pick a
# release newer than the lock); `pip check` then proves the lock complete.
COPY requirements.lock .
RUN pip install --no-cache-dir --no-deps --require-hashes -r requirements.lock \
    && pip check

# A fixed uid keeps file ownership predictable on mounted volumes.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
COPY --chown=root:root app/ ./app/
USER 10001

EXPOSE 8000

# slim has no curl; the interpreter is already here. /healthz is liveness only, so a
# missing sidecar does not mark the container unhealthy (readiness is /readyz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]

# On SIGTERM uvicorn stops listening and gives requests in flight 3 s (every one that changes
# something answers within REQUEST_TIMEOUT_SECONDS, 2 s); then the app waits for changes that
# outlived their request (SHUTDOWN_DRAIN_SECONDS, 7 s). The orchestrator's kill deadline must
# allow for both: compose stop_grace_period, the chart's terminationGracePeriodSeconds.
CMD ["uvicorn", "app.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--timeout-graceful-shutdown", "3"]
