# FleXOR model server and trainer images, Debian 12.
#
#   docker build --target server  -t flexor-server  .   # the default target
#   docker build --target trainer -t flexor-trainer .
#   docker run --rm -p 8001:8001 -p 8002:8002 flexor-server
#     (inference open; admin RPCs need the token the entrypoint generates,
#     or mount your own: -v "$PWD/auth:/etc/flexor/auth:ro"; TLS: mount
#     tls.crt/tls.key[/ca.crt] on /etc/flexor/tls; docs/security.md)
#   docker run --rm -v "$PWD/models:/opt/flexor/models" -p 8001:8001 \
#     -p 8002:8002 flexor-server          # serve your own repository
#   docker run --rm -v "$PWD/models:/models" flexor-trainer \
#     --epochs=10 --publish-dir=/models   # train and publish a new version
#
# The build stage installs its packages with deploy/install-deps.sh, the same
# script the README and CI use. The runtime stages get only the shared
# libraries the binaries load (deploy/docker/*.packages, checked against the
# built binaries by tests/deploy/runtime_deps_test.sh) and run as the
# unprivileged user flexor (uid 10001). docs/operations.md has the rest.

ARG DEBIAN_IMAGE=debian:12
ARG DEBIAN_SLIM_IMAGE=debian:12-slim

# ---- build: compile the server, the client tools and the trainer ----------
FROM ${DEBIAN_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY deploy/install-deps.sh deploy/install-deps.sh
RUN bash deploy/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN rm -rf build \
 && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DFLEXOR_BUILD_TRAINER=ON -DFLEXOR_BUILD_BENCH=OFF \
      -DFLEXOR_BUILD_TESTS=OFF \
 && cmake --build build -j"$(nproc)" \
      --target flexor_server flexorctl flexor_make_model flexor_train \
 && mkdir -p /out/bin \
 && cp build/server/flexor_server build/tools/flexorctl \
      build/tools/flexor_make_model build/trainer/flexor_train /out/bin/ \
 && strip /out/bin/* \
 && if ls models/*/[0-9]*/model.flexor >/dev/null 2>&1; then \
      cp -r models /out/models; \
    else \
      build/tools/flexor_make_model --name=fashion_lenet \
        --out=/out/models/fashion_lenet/1/model.flexor; \
    fi

# ---- common runtime base: the unprivileged user ----------------------------
FROM ${DEBIAN_SLIM_IMAGE} AS runtime-base
ENV DEBIAN_FRONTEND=noninteractive
COPY deploy/docker/ /tmp/docker/
RUN groupadd --system --gid 10001 flexor \
 && useradd --system --uid 10001 --gid flexor --home-dir /home/flexor \
      --create-home --shell /usr/sbin/nologin flexor

# ---- trainer: flexor_train with libtorch and Fashion-MNIST -----------------
FROM runtime-base AS trainer
RUN sh /tmp/docker/install-packages.sh /tmp/docker/trainer-runtime.packages
COPY --from=build /out/bin/flexor_train /usr/local/bin/
USER flexor
WORKDIR /home/flexor
ENTRYPOINT ["/usr/local/bin/flexor_train"]
CMD ["--help"]

# ---- server: flexor_server + flexorctl, default repository baked in --------
FROM runtime-base AS server
RUN sh /tmp/docker/install-packages.sh /tmp/docker/server-runtime.packages
COPY --from=build /out/bin/flexor_server /out/bin/flexorctl \
     /out/bin/flexor_make_model /usr/local/bin/
# The entrypoint adds the security flags for what is mounted and otherwise
# generates an admin token, so admin RPCs are never open by default
# (deploy/docker/server-entrypoint.sh, docs/security.md).
COPY deploy/docker/server-entrypoint.sh /usr/local/bin/flexor-entrypoint
COPY deploy/docker/server-probe.sh /usr/local/bin/flexor-probe
# Owned by flexor so that RepositoryModelLoad uploads (explicit mode) can be
# persisted; mount a volume on /opt/flexor/models to serve another repository.
COPY --from=build --chown=10001:10001 /out/models /opt/flexor/models
USER flexor
WORKDIR /home/flexor
EXPOSE 8001 8002
STOPSIGNAL SIGTERM
# Healthy = ready: the port answers at once, the startup models load in the
# background, and ServerReady (this service) follows them.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/flexor-probe", "inference.GRPCInferenceService"]
ENTRYPOINT ["/usr/local/bin/flexor-entrypoint"]
CMD ["--model-repository=/opt/flexor/models", "--model-control-mode=explicit", \
     "--load-model=*", "--grpc-port=8001", "--metrics-address=0.0.0.0", \
     "--metrics-port=8002"]
