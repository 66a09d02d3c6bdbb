#!/usr/bin/env bash
# The whole test suite: ctest (C selftests + integration tests) on the normal
# build, ctest again on an ASan/UBSan build, then pytest. Run after ./setup.sh.
# Every stage runs even when an earlier one failed; the exit status is non-zero
# when any stage failed.
#   AC_TEST_SANITIZE=0 tests/run_all.sh    skip the sanitizer pass
#   AC_TEST_LONG=0 tests/run_all.sh        skip the tests labelled / marked 'long'
#                                          (fault and multi-worker runs; CI runs them: they
#                                          fit its time, and plain ctest/pytest skip them)
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${AC_BUILD_DIR:-build}
JOBS=$(nproc)
LABEL_ARGS=(-LE long)
PYTEST_MARK=(-m "not long")
if [ "${AC_TEST_LONG:-1}" = 1 ]; then
  LABEL_ARGS=()
  PYTEST_MARK=(-m "long or not long")
fi
failed=()

echo "== ctest ($BUILD_DIR)"
(cd "$BUILD_DIR" && ctest --output-on-failure -j"$JOBS" "${LABEL_ARGS[@]}") || failed+=("ctest")

if [ "${AC_TEST_SANITIZE:-1}" = 1 ]; then
  echo "== ctest under ASan/UBSan (build-asan)"
  if cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DAC_SANITIZE=ON >/dev/null &&
     cmake --build build-asan -j"$JOBS" >/dev/null; then
    (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
       ctest --output-on-failure -j"$JOBS" "${LABEL_ARGS[@]}" -LE 'long|no_sanitize') || failed+=("ctest-asan")
  else
    failed+=("build-asan")
  fi
fi

echo "== pytest"
export AC_BIN="$PWD/$BUILD_DIR/cli/autocalib" AC_BUILD_DIR="$PWD/$BUILD_DIR"
# pytest exits 5 when it collected no tests: that counts as a failure too.
.venv/bin/python -m pytest -q "${PYTEST_MARK[@]}" tests/python || failed+=("pytest")

if [ ${#failed[@]} -gt 0 ]; then
  echo "run_all: FAILED stages: ${failed[*]}"
  exit 1
fi
echo "run_all: all stages passed"
