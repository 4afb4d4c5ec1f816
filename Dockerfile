# Postline's one image: every stage is `postline <stage> --config /etc/postline/postline.toml`
# (the Deployments' args; --config may also come before the stage). CMD prints the help.
# Build: docker build -t postline:$(git describe --tags --always) .
# Stage 1 installs Postline and its pinned dependencies (constraints.txt) into a venv (the
# final image has no compiler); stage 2 copies that venv onto a clean slim base as a non-root user.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/postline
COPY pyproject.toml constraints.txt README.md ./
COPY shared ./shared
COPY services ./services
RUN /opt/postline/bin/pip install --constraint constraints.txt .

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="postline" \
      org.opencontainers.image.description="Outbound SMTP relay: ingest, signer, deliverer, bouncer"
ENV PATH=/opt/postline/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Debian's unbound and root trust anchor (dns-root-data) for the DANE component's resolver
# sidecar (deploy/k8s/components/dane): it runs from this image, so no third-party image is
# trusted with the answers DANE relies on. Unpinned: Debian's security updates replace the
# old versions in the archive, and a pin would break the build after each of them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends unbound dns-root-data \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 postline \
    && useradd --system --uid 10001 --gid postline --no-create-home \
       --home-dir /var/lib/postline --shell /usr/sbin/nologin postline \
    && mkdir -p /var/lib/postline /etc/postline \
    && chown postline:postline /var/lib/postline
COPY --from=build /opt/postline /opt/postline
WORKDIR /var/lib/postline
USER 10001:10001
# 9464: /metrics /healthz /readyz; 2525/2587/2465: ingest's relay, submission and SMTPS
# listeners (the bouncer's SMTP listener is 2525 in its own pod).
EXPOSE 9464 2525 2587 2465
ENTRYPOINT ["postline"]
CMD ["--help"]
