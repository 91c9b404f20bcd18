# Prometheus (and promtool) from Debian's package: the compose file runs it with
# reference/compose/prometheus.yml and the system's alert rules (reference/observability/rules).
# Built by scripts/image.sh (make image), like postgres.Dockerfile.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o nobody -g nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
