#!/usr/bin/env bash
# Installs every Debian 12 package the project needs to build, test, train and
# benchmark. Idempotent: packages already present are skipped by apt.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl
  # RPC + serialization
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  # Core libraries
  libabsl-dev libtbb-dev prometheus-cpp-dev zlib1g-dev
  # Security: TLS files, model signatures (Ed25519); the openssl CLI makes
  # the tests' certificates and keys
  libssl-dev openssl
  # Tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev libopenblas-dev
  # Monitoring and deployment checks (Prometheus + promtool, yamllint)
  prometheus yamllint python3-yaml
  # Fuzzing (tests/fuzz: clang, libFuzzer)
  clang libclang-rt-14-dev
  # Trainer and its data
  libtorch-dev dataset-fashion-mnist gnuplot-nox
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
