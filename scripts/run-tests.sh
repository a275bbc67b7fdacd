#!/bin/bash
# run-tests.sh: the whole test suite behind `make test` (scripts/deps.sh test installs what it
# needs first). Steps, each recorded whatever the others did:
#   1. build the ASan+UBSan preset, run the unit tests with ctest
#   2. build the fuzz preset (clang) and run each fuzz_* target FUZZ_SECONDS (10) over its
#      committed corpus tests/fuzz/corpus/<module>/ (a target without a corpus is skipped)
#   3. pytest -n 2 tests/integration tests/interop against build/asan/ternd (real clients)
#   4. build the TSan preset and run tests/interop/test_concurrency.py against it
# Prints a summary table (step, result, counts, seconds) and, last, "N passed, N failed" where N
# counts tests (unit checks + fuzz targets + pytest tests); exits non-zero if anything failed.
# Logs: build/logs/. Works without a TTY (CI=true, no stdin).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
FUZZ_SECONDS="${FUZZ_SECONDS:-10}"
LOGS=build/logs
mkdir -p "$LOGS"

declare -a S_NAME S_RESULT S_COUNTS S_SECS
total_pass=0
total_fail=0
step_start=0
begin() { echo; echo "== $1"; step_start=$SECONDS; }
record() { # name result passed failed
    S_NAME+=("$1"); S_RESULT+=("$2"); S_COUNTS+=("$3 passed, $4 failed"); S_SECS+=($((SECONDS - step_start)))
    total_pass=$((total_pass + $3)); total_fail=$((total_fail + $4))
}
build() { # preset log [target]: configure + build quietly, the log's tail on failure
    local preset=$1 log=$2
    shift 2
    if { cmake --preset "$preset" && cmake --build --preset "$preset" "$@"; } > "$log" 2>&1; then
        return 0
    fi
    tail -40 "$log"
    return 1
}
pytest_counts() { # log -> "passed failed" from pytest's closing line ("3 failed, 60 passed, 2 skipped in 9.1s")
    local line p f e
    line=$(grep -E '(passed|failed|error|errors|skipped|deselected|no tests ran)( |,).*in [0-9.]+s' "$1" | tail -1)
    p=$(grep -Eo '[0-9]+ passed' <<< "$line" | grep -Eo '[0-9]+' || true)
    f=$(grep -Eo '[0-9]+ failed' <<< "$line" | grep -Eo '[0-9]+' || true)
    e=$(grep -Eo '[0-9]+ errors?' <<< "$line" | grep -Eo '[0-9]+' || true)
    echo "${p:-0} $((${f:-0} + ${e:-0}))"
}

# ---- 1. unit tests (ASan + UBSan) ----
begin "build (asan) and unit tests"
if build asan "$LOGS/build-asan.log"; then
    ctest --test-dir build/asan --output-on-failure -j2 > "$LOGS/ctest.log" 2>&1
    ctest_rc=$?
    # every unit binary ends with "N passed, N failed" (tests/unit/unit.c); ctest keeps the output
    # of all of them in LastTest.log
    last=build/asan/Testing/Temporary/LastTest.log
    read -r up uf < <(grep -hE '^[0-9]+ passed, [0-9]+ failed$' "$last" 2>/dev/null |
                      awk '{p += $1; f += $3} END {print p + 0, f + 0}')
    crashed=$(grep -Eo '[0-9]+ tests failed out of' "$LOGS/ctest.log" | grep -Eo '^[0-9]+' || true)
    [ "${crashed:-0}" -gt "$uf" ] && uf=$crashed  # a binary that died printed no count line
    if grep -q 'No tests were found' "$LOGS/ctest.log"; then
        record "unit tests" "no tests" 0 0
    elif [ $ctest_rc = 0 ] && [ "$uf" = 0 ]; then
        grep -E 'Test +#|tests passed' "$LOGS/ctest.log"
        record "unit tests" pass "$up" 0
    else
        # --output-on-failure put the output of the failing binaries in the log
        grep -vE '^ *(ok|Start [0-9]+:|[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed) ' "$LOGS/ctest.log" | head -120
        [ "$uf" = 0 ] && uf=1
        record "unit tests" FAIL "$up" "$uf"
    fi
else
    record "build asan" FAIL 0 1
fi

# ---- 2. fuzz targets, short ----
begin "fuzz targets (${FUZZ_SECONDS}s each)"
fuzz_targets=()
for f in tests/fuzz/fuzz_*.c; do
    [ -f "$f" ] && fuzz_targets+=("$(basename "$f" .c)")
done
if ! command -v clang > /dev/null; then
    record "fuzz" "skipped (no clang)" 0 0
elif [ ${#fuzz_targets[@]} = 0 ]; then
    record "fuzz" "no targets" 0 0
elif ! build fuzz "$LOGS/build-fuzz.log" --target "${fuzz_targets[@]}"; then
    record "build fuzz" FAIL 0 1
else
    fp=0 ff=0
    for name in "${fuzz_targets[@]}"; do
        f=build/fuzz/$name
        mod=${name#fuzz_}
        mod=${mod%%_*}
        corpus="tests/fuzz/corpus/$mod"
        [ -d "tests/fuzz/corpus/${name#fuzz_}" ] && corpus="tests/fuzz/corpus/${name#fuzz_}"
        if [ ! -d "$corpus" ]; then
            echo "  skip $name (no $corpus)"
            continue
        fi
        # new inputs go to a scratch dir (the committed corpus stays as it is); crash files
        # land in build/logs
        work=$(mktemp -d)
        if "$f" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$LOGS/$name-" "$work" "$corpus" > "$LOGS/$name.log" 2>&1; then
            echo "  ok   $name ($(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$LOGS/$name.log" | grep -Eo '[0-9]+$') runs)"
            fp=$((fp + 1))
        else
            echo "  FAIL $name (log: $LOGS/$name.log)"
            grep -E -A30 'ERROR|runtime error|deadly signal' "$LOGS/$name.log" | head -60
            ff=$((ff + 1))
        fi
        rm -rf "$work"
    done
    record "fuzz" "$([ $ff = 0 ] && echo pass || echo FAIL)" $fp $ff
fi

# ---- 3. integration + interop (pytest, real ternd, real clients) ----
begin "integration and interoperability tests (build/asan/ternd)"
dirs=""
for d in tests/integration tests/interop; do
    compgen -G "$d/test_*.py" > /dev/null && dirs="$dirs $d"
done
if [ ! -x build/asan/ternd ]; then
    record "pytest" "FAIL (no build/asan/ternd)" 0 1
elif [ -z "$dirs" ]; then
    record "pytest" "no tests" 0 0
else
    # shellcheck disable=SC2086
    TERND="$PWD/build/asan/ternd" TERN_BIN="$PWD/build/asan/tern" \
        $PY -m pytest -n 2 -q -p no:cacheprovider $dirs < /dev/null 2>&1 | tee "$LOGS/pytest.log"
    rc=${PIPESTATUS[0]}
    read -r pp pf < <(pytest_counts "$LOGS/pytest.log")
    if [ "$rc" = 0 ]; then
        record "pytest" pass "$pp" "$pf"
    else
        [ "$pf" = 0 ] && pf=1  # collection error, crash, ...: still a failure
        record "pytest" "FAIL (exit $rc)" "$pp" "$pf"
    fi
fi

# ---- 4. concurrency under ThreadSanitizer ----
begin "concurrency test under ThreadSanitizer (build/tsan/ternd)"
if [ ! -f tests/interop/test_concurrency.py ]; then
    record "tsan concurrency" "no test" 0 0
elif ! command -v clang > /dev/null; then
    record "tsan concurrency" "skipped (no clang)" 0 0
elif ! build tsan "$LOGS/build-tsan.log" --target ternd; then
    record "build tsan" FAIL 0 1
else
    run=()
    # clang 14's TSan cannot map its shadow memory with the high mmap randomisation of recent
    # kernels; without address randomisation (inherited by the broker) it works
    if build/tsan/ternd --version 2>&1 | grep -q 'unexpected memory mapping'; then
        run=(setarch "$(uname -m)" -R)
    fi
    TERND="$PWD/build/tsan/ternd" "${run[@]}" $PY -m pytest -q -p no:cacheprovider \
        tests/interop/test_concurrency.py < /dev/null 2>&1 | tee "$LOGS/tsan.log"
    rc=${PIPESTATUS[0]}
    read -r tp tf < <(pytest_counts "$LOGS/tsan.log")
    if [ "$rc" = 0 ]; then
        record "tsan concurrency" pass "$tp" "$tf"
    else
        [ "$tf" = 0 ] && tf=1
        record "tsan concurrency" "FAIL (exit $rc)" "$tp" "$tf"
    fi
fi

# ---- summary ----
echo
echo "== summary (logs in $LOGS/)"
printf '  %-18s %-28s %-24s %s\n' step result tests seconds
failed=0
for i in "${!S_NAME[@]}"; do
    printf '  %-18s %-28s %-24s %s\n' "${S_NAME[$i]}" "${S_RESULT[$i]}" "${S_COUNTS[$i]}" "${S_SECS[$i]}"
    [[ "${S_RESULT[$i]}" == FAIL* ]] && failed=1
done
[ $failed = 1 ] && [ $total_fail = 0 ] && total_fail=1
echo "$total_pass passed, $total_fail failed"
[ $failed = 0 ] && [ $total_fail = 0 ]
