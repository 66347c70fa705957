#!/usr/bin/env bash
# Differential test of the batch mode against cleanlab 2.9.0 (CTest
# batch_vs_cleanlab).
#
#   tests/diff/run.sh BATCH_DUMP [compare.py options]
#   tests/diff/run.sh build/tests/diff/batch_dump --cases 20000 --seed 7
#
# BATCH_DUMP is the program built from tests/diff/batch_dump.c.  The
# cleanlab environment comes from scripts/cleanlab-venv (built once, then
# cached).  Exit 77 (skipped) when the package index is unreachable and no
# environment is cached, unless CI or CFD_REQUIRE_CLEANLAB is set: then
# that is a failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 BATCH_DUMP [options]" >&2; exit 2; }
driver=$1
shift

rc=0
venv=$("$here/../../scripts/cleanlab-venv") || rc=$?
if [ "$rc" -eq 3 ]; then
        if [ -n "${CI:-}${CFD_REQUIRE_CLEANLAB:-}" ]; then
                echo "batch_vs_cleanlab: no cleanlab environment and the" \
                        "package index is unreachable" >&2
                exit 1
        fi
        echo "batch_vs_cleanlab: skipped: package index unreachable and" \
                "no cached cleanlab environment"
        exit 77
elif [ "$rc" -ne 0 ]; then
        exit 1
fi
exec "$venv/bin/python" "$here/compare.py" --driver "$driver" "$@"
