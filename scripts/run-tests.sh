#!/bin/bash
# run-tests.sh: the whole test suite (make test). Builds the ASan+UBSan preset, then runs
#   1. unit tests (ctest)          2. fuzz targets, a short fixed time each (clang)
#   3. integration + interop tests (pytest, real ternd, real clients)
#   4. the concurrency test against a ThreadSanitizer build
# and prints a summary; exits non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
FUZZ_SECONDS="${FUZZ_SECONDS:-10}"
declare -a NAMES RESULTS
total_pass=0
total_fail=0
record() { NAMES+=("$1"); RESULTS+=("$2"); }
count_line() { # adds the "N passed, N failed" numbers of a log to the totals
  local log="$1" p f
  p=$(grep -Eo '[0-9]+ passed' "$log" | tail -1 | grep -Eo '[0-9]+' || true)
  f=$(grep -Eo '[0-9]+ failed' "$log" | tail -1 | grep -Eo '[0-9]+' || true)
  total_pass=$((total_pass + ${p:-0})); total_fail=$((total_fail + ${f:-0}))
}
mkdir -p build/logs

echo "== build (asan)"
if ! { cmake --preset asan >/dev/null && cmake --build --preset asan; } > build/logs/build-asan.log 2>&1; then
  tail -40 build/logs/build-asan.log
  echo "build failed"; echo "0 passed, 1 failed"; exit 1
fi

echo "== unit tests"
ut_fail=0
for t in build/asan/test_*; do
  [ -x "$t" ] || continue
  log="build/logs/$(basename "$t").log"
  if "$t" > "$log" 2>&1; then echo "  ok   $(basename "$t") ($(tail -1 "$log"))"; else
    echo "  FAIL $(basename "$t")"; grep -E "FAIL|ERROR|runtime error" "$log" | head -20; ut_fail=1; fi
  count_line "$log"
done
record "unit tests" "$([ $ut_fail = 0 ] && echo pass || echo FAIL)"

echo "== fuzz targets (${FUZZ_SECONDS}s each)"
if command -v clang >/dev/null; then
  if { cmake --preset fuzz >/dev/null && cmake --build --preset fuzz; } > build/logs/build-fuzz.log 2>&1; then
    fz_fail=0
    for f in build/fuzz/fuzz_*; do
      [ -x "$f" ] || continue
      name=$(basename "$f"); mod=${name#fuzz_}
      corpus="tests/fuzz/corpus/$mod"; [ -d "$corpus" ] || { echo "  skip $name (no corpus)"; continue; }
      work=$(mktemp -d)
      if (cd "$work" && "$OLDPWD/$f" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 "$work" "$OLDPWD/$corpus") > "build/logs/$name.log" 2>&1; then
        echo "  ok   $name ($(grep -Eo '#[0-9]+' "build/logs/$name.log" | tail -1) runs)"; total_pass=$((total_pass + 1))
      else echo "  FAIL $name"; tail -30 "build/logs/$name.log"; fz_fail=1; total_fail=$((total_fail + 1)); fi
      rm -rf "$work"
    done
    record "fuzz" "$([ $fz_fail = 0 ] && echo pass || echo FAIL)"
  else
    tail -30 build/logs/build-fuzz.log; record "fuzz build" FAIL; total_fail=$((total_fail + 1))
  fi
else
  record "fuzz" "skipped (no clang)"
fi

echo "== integration and interoperability tests"
dirs=""
for d in tests/integration tests/interop; do ls $d/test_*.py >/dev/null 2>&1 && dirs="$dirs $d"; done
if [ -n "$dirs" ]; then
  if TERND="$PWD/build/asan/ternd" TERN_BIN="$PWD/build/asan/tern" $PY -m pytest -n 2 -q -p no:cacheprovider $dirs \
      --deselect tests/interop/test_concurrency.py 2>&1 | tee build/logs/pytest.log; then
    record "pytest" pass; else record "pytest" FAIL; fi
  count_line build/logs/pytest.log
else
  record "pytest" "no tests"
fi

echo "== concurrency under ThreadSanitizer"
if [ -f tests/interop/test_concurrency.py ]; then
  if { cmake --preset tsan >/dev/null && cmake --build --preset tsan --target ternd; } > build/logs/build-tsan.log 2>&1; then
    if TERND="$PWD/build/tsan/ternd" $PY -m pytest -q -p no:cacheprovider tests/interop/test_concurrency.py 2>&1 | tee build/logs/tsan.log; then
      record "tsan concurrency" pass; else record "tsan concurrency" FAIL; fi
    count_line build/logs/tsan.log
  else
    tail -30 build/logs/build-tsan.log; record "tsan build" FAIL; total_fail=$((total_fail + 1))
  fi
fi

echo
echo "== summary"
failed=0
for i in "${!NAMES[@]}"; do
  printf '  %-22s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}"
  [[ "${RESULTS[$i]}" == FAIL* ]] && failed=1
done
[ $failed = 1 ] && [ $total_fail = 0 ] && total_fail=1
echo "$total_pass passed, $total_fail failed"
[ $failed = 0 ] && [ $total_fail = 0 ]
