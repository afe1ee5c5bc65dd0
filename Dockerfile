# FleXOR model server on Debian 12: installs the Debian packages the project
# needs, builds in Release and serves the shipped repository models/.
#   docker build -t flexor-server .
#   docker run --rm -p 8001:8001 -p 8002:8002 flexor-server
FROM debian:12
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY deploy/install-deps.sh deploy/install-deps.sh
RUN bash deploy/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN rm -rf build && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DFLEXOR_BUILD_TRAINER=OFF -DFLEXOR_BUILD_BENCH=OFF -DFLEXOR_BUILD_TESTS=OFF \
 && cmake --build build -j"$(nproc)" \
      --target flexor_server flexorctl flexor_make_model \
 && if ! ls models/*/[0-9]*/model.flexor >/dev/null 2>&1; then \
      build/tools/flexor_make_model --name=fashion_lenet \
        --out=models/fashion_lenet/1/model.flexor; fi
EXPOSE 8001 8002
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s \
  CMD build/tools/flexorctl --timeout-ms=2000 status >/dev/null || exit 1
ENTRYPOINT ["build/server/flexor_server", "--model-repository=/src/models", \
            "--model-control-mode=explicit", "--load-model=*", \
            "--grpc-port=8001", "--metrics-port=8002"]
