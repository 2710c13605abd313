#!/usr/bin/env bash
# Runs the unit tests once and the integration tests under each MPM, then
# prints one closing line with the totals. Exit status is non-zero if
# anything failed.
set -uo pipefail
cargo=${CARGO:-cargo}
mpms=${MPMS:-prefork worker event}
threads=${TEST_THREADS:-4}
so=${MOD_FASTCGI_SO:-$(pwd)/mod_fastcgi.so}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0

run() {
  "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || status=1
}

echo "=== unit tests ==="
run "$cargo" test --release --lib
echo "=== must-not-compile tests of the httpd wrappers' lifetimes ==="
run "$cargo" test --release --doc httpd
for mpm in $mpms; do
  echo "=== integration tests, MPM $mpm ==="
  FCGI_TEST_MPM=$mpm MOD_FASTCGI_SO=$so run "$cargo" test --release --test '*' -- --test-threads="$threads"
done

passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo
echo "all: $passed passed, $failed failed"
exit $status
