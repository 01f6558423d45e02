# roomsync as a container: `docker build -t roomsync .`, then e.g.
#   docker run --rm --env-file roomsync.env roomsync db upgrade
#   docker run --rm --env-file roomsync.env roomsync sync --json
# Nothing secret is baked in: credentials and DATABASE_URL come from the environment at run time.

# ---- build: the wheel, then a virtualenv with it and its dependencies
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY etl/ etl/
COPY migrations/ migrations/
COPY cron/ cron/
COPY deploy/ deploy/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/roomsync \
    && /opt/roomsync/bin/pip install --no-cache-dir /wheels/roomsync-*.whl \
    && /opt/roomsync/bin/pip uninstall --yes pip

# ---- run: the virtualenv only, as an unprivileged user
FROM python:3.11-slim-bookworm
ENV PATH=/opt/roomsync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 roomsync \
    && useradd --system --no-log-init --uid 10001 --gid roomsync \
       --home-dir /var/lib/roomsync --create-home --shell /usr/sbin/nologin roomsync
COPY --from=build /opt/roomsync /opt/roomsync
USER 10001:10001
# The default SQLite database (no DATABASE_URL) lands here; mount a volume to keep it.
WORKDIR /var/lib/roomsync
ENTRYPOINT ["roomsync"]
CMD ["--help"]
