# syntax=docker/dockerfile:1
# Build a wheel in one stage, install it into a small runtime image in the next.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY archiver ./archiver
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="rc-archiver" \
      org.opencontainers.image.description="Archives RingCentral call recordings to S3 or a folder" \
      org.opencontainers.image.source="https://example.invalid/rc-archiver" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# A numeric non-root user; state and spool live on volumes so the root filesystem can be read-only.
USER 10001:10001
ENV RC_ARCHIVER_STATE_PATH=/var/lib/rc-archiver/state.db \
    RC_ARCHIVER_SPOOL_DIR=/var/spool/rc-archiver \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Everything written at run time lives on these volumes, so the root filesystem can be read-only.
VOLUME ["/var/lib/rc-archiver", "/var/spool/rc-archiver", "/tmp"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["rc-archiver"]
CMD ["daemon"]
