#!/usr/bin/env bash
# Checks the configured confidentd units: `systemd-analyze verify` must
# pass without a single warning (unknown keys are only warnings), for the
# service, the template and an instance of it, and the hardening must keep
# the offline `systemd-analyze security` exposure at 2.0 or below.
# Usage: test_units.sh SYSTEMD_ANALYZE UNIT_DIR
set -euo pipefail

analyze=$1
dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cp "$dir/confidentd.service" "$dir/confidentd@.service" "$tmp/"
cp "$dir/confidentd@.service" "$tmp/confidentd@demo.service"

fail=0
for unit in confidentd.service confidentd@.service confidentd@demo.service; do
        if ! out=$("$analyze" verify "$tmp/$unit" 2>&1); then
                echo "FAIL verify $unit: $out"
                fail=1
        elif [ -n "$out" ]; then
                echo "FAIL verify $unit printed warnings: $out"
                fail=1
        else
                echo "ok verify $unit"
        fi
done

for unit in confidentd.service confidentd@demo.service; do
        # --threshold is the exposure times ten.
        if out=$("$analyze" security --offline=true --threshold=20 \
                        "$tmp/$unit" 2>&1); then
                echo "ok security $unit: ${out##*$'\n'}"
        else
                echo "FAIL security $unit: ${out##*$'\n'}"
                fail=1
        fi
done
exit $fail
