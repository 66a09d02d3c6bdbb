#!/usr/bin/env bash
# The whole test suite: ctest (C selftests + integration tests) on the normal
# build, ctest again on an ASan/UBSan build, then pytest. Run after ./setup.sh.
#   AC_TEST_SANITIZE=0 tests/run_all.sh    skip the sanitizer pass
#   AC_TEST_LONG=1 tests/run_all.sh        also run tests labelled 'long'
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${AC_BUILD_DIR:-build}
JOBS=$(nproc)
LABEL_ARGS=(-LE long)
[ "${AC_TEST_LONG:-0}" = 1 ] && LABEL_ARGS=()

echo "== ctest ($BUILD_DIR)"
(cd "$BUILD_DIR" && ctest --output-on-failure -j"$JOBS" "${LABEL_ARGS[@]}")

if [ "${AC_TEST_SANITIZE:-1}" = 1 ]; then
  echo "== ctest under ASan/UBSan (build-asan)"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DAC_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$JOBS" >/dev/null
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j"$JOBS" "${LABEL_ARGS[@]}" -LE no_sanitize)
fi

echo "== pytest"
export AC_BIN="$PWD/$BUILD_DIR/cli/autocalib"
rc=0
.venv/bin/python -m pytest -q tests/python || rc=$?
# pytest exits 5 when it collected no tests; that is a failure of the suite's setup.
exit $rc
