#!/bin/sh
# test_skip_reasons.sh - scripts/test lists each skipped test with the
# reason it printed: a small CTest project with two skipped tests (one
# says why on stdout, one on stderr among other lines), a passing one
# whose output mentions skipping, and one that prints nothing.
#
# usage: test_skip_reasons.sh path/to/scripts/test path/to/cmake path/to/ctest
set -u

TEST_SCRIPT=${1:?usage: test_skip_reasons.sh scripts/test cmake ctest}
CMAKE=${2:?missing cmake}
CTEST=${3:?missing ctest}

# Without that mode scripts/test would install and build: never run it.
grep -q -- '--print-skipped' "$TEST_SCRIPT" ||
        { echo "FAIL: $TEST_SCRIPT has no --print-skipped mode"; exit 1; }

DIR=$(mktemp -d) || exit 1
trap 'rm -rf "$DIR"' EXIT

cat >"$DIR/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(skips NONE)
enable_testing()
add_test(NAME data_test COMMAND sh -c "echo 'skip: no ../shared/data'; exit 77")
add_test(NAME quiet_test COMMAND sh -c "exit 77")
add_test(NAME noisy_test COMMAND sh -c "echo one; echo 'SKIP: no python3' >&2; echo two; exit 77")
add_test(NAME passing_test COMMAND sh -c "echo 'nothing to skip here'")
set_tests_properties(data_test quiet_test noisy_test PROPERTIES
        SKIP_RETURN_CODE 77)
CMAKE
"$CMAKE" -S "$DIR" -B "$DIR/b" >/dev/null || exit 1
(cd "$DIR/b" && "$CTEST" -j 2 >"$DIR/ctest.out" 2>&1)

bash "$TEST_SCRIPT" --print-skipped "$DIR/ctest.out" \
        "$DIR/b/Testing/Temporary/LastTest.log" >"$DIR/got" 2>&1 || {
        echo "FAIL: --print-skipped exited $?"
        cat "$DIR/got"
        exit 1
}
cat >"$DIR/expected" <<'EXPECTED'
Skipped tests and their reasons:
  data_test: skip: no ../shared/data
  quiet_test: (the test printed no reason)
  noisy_test: SKIP: no python3
EXPECTED
sort "$DIR/expected" >"$DIR/expected.sorted"
sort "$DIR/got" >"$DIR/got.sorted"
if ! cmp -s "$DIR/expected.sorted" "$DIR/got.sorted"; then
        echo "FAIL: skip reasons differ (expected, then got):"
        cat "$DIR/expected" "$DIR/got"
        exit 1
fi
echo "all checks passed"
