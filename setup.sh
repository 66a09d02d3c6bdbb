#!/usr/bin/env bash
# Sets up everything autocalib needs on a fresh Debian 12 machine, then builds it.
# Idempotent: packages already present are not reinstalled, the venv is reused,
# the build is incremental. Run as root (or with sudo available).
#
#   ./setup.sh                  install + configure + build into build/
#   AC_BUILD_DIR=build-asan AC_SANITIZE=ON ./setup.sh   ASan/UBSan build
#   AC_BENCH=1 ./setup.sh       also .venv-bench, the benchmark peers (bench/run)
#   AC_TF=1 ./setup.sh          also .venv-tf, TensorFlow for tests/python/test_tensorflow.py
#   AC_MXNET=1 ./setup.sh       also .venv-mxnet, MXNet for tests/python/test_mxnet.py
set -euo pipefail
cd "$(dirname "$0")"

BUILD_DIR=${AC_BUILD_DIR:-build}
SANITIZE=${AC_SANITIZE:-OFF}

# Debian packages: build tools, the C libraries autocalib links, the Python
# packages the tests and the training script use, and test data.
APT_PACKAGES=(
  build-essential cmake pkg-config git ca-certificates
  libzmq3-dev libczmq-dev libmsgpack-dev liblmdb-dev
  libturbojpeg0-dev libpng-dev zlib1g-dev libdeflate-dev
  libprotobuf-c-dev protobuf-c-compiler libjansson-dev
  libonnx-dev libonnx-testdata
  clang libclang-rt-14-dev
  python3 python3-venv python3-pip python3-numpy python3-pytest python3-onnx
  python3-torch python3-torchvision python3-pil
  python3-lmdb python3-msgpack python3-zmq
  dataset-fashion-mnist
)
# Extra packages other modules add (datasets, benchmarks) are listed in this file
# so there is one place to look.
if [ -f scripts/apt-packages.txt ]; then
  while read -r p; do
    case "$p" in ""|\#*) ;; *) APT_PACKAGES+=("$p") ;; esac
  done < scripts/apt-packages.txt
fi

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup.sh: need root to install Debian packages (run as root or install sudo)" >&2; exit 1
  fi
}

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${#missing[@]} Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python: Debian's interpreter with its packages (torch, numpy, onnx ...) plus the
# PyPI-only ones (onnxruntime, the reference runtime) in a venv that sees both.
# numpy stays Debian's (<2) because Debian's torch is built against it.
PY=/usr/bin/python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv --system-site-packages .venv
fi
# Reinstall when the requirements file changed since the last successful install.
venv_install() { # VENV REQUIREMENTS
  local req_sum
  req_sum=$(sha256sum "$2" | cut -d' ' -f1)
  if [ "$(cat "$1/.requirements.sha256" 2>/dev/null)" != "$req_sum" ]; then
    "$1/bin/pip" install -q --disable-pip-version-check -r "$2"
    echo "$req_sum" > "$1/.requirements.sha256"
  fi
}
venv_install .venv python/requirements-test.txt
# bench/run's peers (ONNX Runtime's quantizer wants a newer onnx than the tests use):
# their own venv, made only when asked (bench/run sets AC_BENCH=1).
if [ "${AC_BENCH:-0}" = 1 ]; then
  [ -x .venv-bench/bin/python ] || "$PY" -m venv --system-site-packages .venv-bench
  venv_install .venv-bench python/requirements-bench.txt
fi
# tests/python/test_tensorflow.py's model builder: TensorFlow in its own plain venv (numpy 2).
if [ "${AC_TF:-0}" = 1 ]; then
  [ -x .venv-tf/bin/python ] || "$PY" -m venv .venv-tf
  venv_install .venv-tf python/requirements-tf.txt
fi
# tests/python/test_mxnet.py's model builder: MXNet 1.9.1 (the last release) in its own venv.
if [ "${AC_MXNET:-0}" = 1 ]; then
  [ -x .venv-mxnet/bin/python ] || "$PY" -m venv .venv-mxnet
  venv_install .venv-mxnet python/requirements-mxnet.txt
fi

cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAC_SANITIZE="$SANITIZE" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
test -x "$BUILD_DIR/cli/autocalib"
echo "setup.sh: built $BUILD_DIR/cli/autocalib"
