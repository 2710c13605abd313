#!/usr/bin/env bash
# Runs fuzz targets one after the other (never two at once: the machine is small).
#   fuzz/run.sh SECONDS [TARGET...]   (default: every target in fuzz/Cargo.toml)
# Each target starts from its committed corpus (fuzz/corpus/<t>) plus what earlier runs
# found (fuzz/work/<t>, not committed); new inputs go to fuzz/work/<t>. `fuzz/run.sh cmin`
# minimises work/<t> + corpus/<t> back into corpus/<t> (what gets committed). Exits non-zero if any
# target reports a finding (crash, panic, timeout, leak, out-of-memory); the reproducer is
# in fuzz/artifacts/<t>/. Per-target summaries (runs, coverage) go to fuzz/logs/<t>.log.
set -u
cd "$(dirname "$0")"
secs=${1:?usage: run.sh SECONDS|cmin [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' Cargo.toml | grep -v '^mod_fastcgi')
fi
CARGO=${CARGO:-cargo}
NICE=${FUZZ_NICE:-19}
RSS=${FUZZ_RSS_LIMIT_MB:-2048}
command -v cargo-fuzz >/dev/null 2>&1 || $CARGO install --locked cargo-fuzz || exit 1
$CARGO +nightly fuzz build -O || exit 1
mkdir -p logs
if [ "$secs" = cmin ]; then
  for t in "${targets[@]}"; do
    mkdir -p "work/$t"
    cp -n "corpus/$t/"* "work/$t/" 2>/dev/null || true
    rm -rf "corpus/$t" && mkdir -p "corpus/$t"
    nice -n "$NICE" "$CARGO" +nightly fuzz cmin -O "$t" "work/$t" -- -rss_limit_mb="$RSS" -timeout=60 >"logs/$t.cmin.log" 2>&1 &&
      cp "work/$t/"* "corpus/$t/" || { echo "cmin $t failed (see fuzz/logs/$t.cmin.log)"; exit 1; }
    echo "$t: $(ls "corpus/$t" | wc -l) inputs, $(du -sk "corpus/$t" | cut -f1) KiB"
  done
  exit 0
fi
failed=()
for t in "${targets[@]}"; do
  mkdir -p "work/$t"
  echo "=== fuzz $t for ${secs}s ==="
  start=$(date +%s)
  nice -n "$NICE" "$CARGO" +nightly fuzz run -O "$t" "work/$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb="$RSS" -timeout=60 -print_final_stats=1 \
    >"logs/$t.log" 2>&1
  rc=$?
  end=$(date +%s)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "logs/$t.log" | tail -1)
  echo "$t: exit $rc, $((end - start))s, ${runs:-?} runs, ${cov:-cov ?}"
  if [ $rc -ne 0 ]; then
    failed+=("$t")
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "logs/$t.log" | head -5
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "FINDINGS in: ${failed[*]} (see fuzz/artifacts/ and fuzz/logs/)"
  exit 1
fi
echo "no findings"
