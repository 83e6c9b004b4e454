# syntax=docker/dockerfile:1
# The syncjob-operator image. Build at the repository root:
#   docker build -t syncjob-operator:0.2.0 .
# Stage "build" makes a venv from the exact pins in requirements/runtime.lock, then adds this
# package without resolving anything else; the final stage copies only that venv onto the same
# slim Python base: no compiler, no pip cache, no source tree. hack/install-package.sh holds the
# install commands. Without a Docker engine, hack/build-image.sh builds this file unchanged with
# buildah; tests/chart/test_image.py inspects that image and tests/node runs it on a kubelet.
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY hack/install-package.sh hack/install-package.sh
COPY requirements/runtime.lock requirements/runtime.lock
RUN sh hack/install-package.sh deps /opt/venv /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN sh hack/install-package.sh package /opt/venv /src

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="syncjob-operator" \
      org.opencontainers.image.description="Reconciles SyncJob objects into AWS IoT TwinMaker and Truto sync jobs" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A named user (getpass and friends look it up) with the UID the Helm chart runs as.
RUN groupadd --gid 10001 syncjob \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin syncjob
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
# 8080: /metrics and /readyz; 8081: kopf's /healthz.
EXPOSE 8080 8081
ENTRYPOINT ["syncjob-operator"]
CMD ["run"]
