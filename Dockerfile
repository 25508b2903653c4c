# syntax=docker/dockerfile:1
# Build a wheel in one stage, install it into a small runtime image in the next.
# The base image, pinned by digest (in both stages) so a rebuild, a rollback, gets the same bytes.
# Refresh it on purpose: `docker buildx imagetools inspect python:3.11-slim` prints the current digest.
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS build
WORKDIR /src
# Dependencies from the hash-pinned lock (requirements.lock, pip-compile --generate-hashes from
# pyproject.toml): the same versions and bytes on every build. The package itself adds none of its own.
COPY requirements.lock ./
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY archiver ./archiver
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
LABEL org.opencontainers.image.title="rc-archiver" \
      org.opencontainers.image.description="Archives RingCentral call recordings to S3 or a folder" \
      org.opencontainers.image.source="https://github.com/rc-archiver/rc-archiver" \
      org.opencontainers.image.documentation="https://github.com/rc-archiver/rc-archiver/blob/main/deploy/README.md" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /wheels /wheels
# Only the wheels built above, the package and its dependencies: nothing is fetched in this stage.
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
# The folders a run writes, created and given to the numeric non-root user BEFORE they are declared
# volumes: Docker seeds a new volume from the image's folder, owner included, so plain `docker run`
# gets writable state and spool folders instead of root-owned ones.
RUN mkdir -p /var/lib/rc-archiver /var/spool/rc-archiver \
 && chown 10001:10001 /var/lib/rc-archiver /var/spool/rc-archiver \
 && chmod 0700 /var/lib/rc-archiver /var/spool/rc-archiver
USER 10001:10001
ENV RC_ARCHIVER_STATE_PATH=/var/lib/rc-archiver/state.db \
    RC_ARCHIVER_SPOOL_DIR=/var/spool/rc-archiver \
    RC_ARCHIVER_METRICS_ADDR=0.0.0.0:9108 \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Everything written at run time lives on these volumes, so the root filesystem can be read-only.
VOLUME ["/var/lib/rc-archiver", "/var/spool/rc-archiver", "/tmp"]
EXPOSE 9108
# The daemon's /healthz: 503 (so unhealthy) while a run makes no progress. A one-shot `run` serves
# no /healthz; Kubernetes ignores HEALTHCHECK and the CronJob has its own deadline.
HEALTHCHECK --interval=60s --timeout=10s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('RC_ARCHIVER_METRICS_ADDR', ':9108').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=5)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["rc-archiver"]
CMD ["daemon"]
