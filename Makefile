# Tern: a thin wrapper over the CMake presets (CMakePresets.json) and scripts/. See README.md.
#   make run    install missing packages, build the release preset, run ternd in the foreground
#   make test   the whole test suite (scripts/run-tests.sh): ends with "N passed, N failed"
.PHONY: run release build test test-tsan fuzz install format format-check conformance clean help bench

FUZZ_SECONDS ?= 600
PY := /usr/bin/python3
FORMAT_DIRS := src lib tools include tests/unit tests/fuzz
FORMAT_FILES = $(shell find $(FORMAT_DIRS) -name '*.[ch]' 2>/dev/null | sort)
FUZZ_TARGETS = $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.c)))

run: ## install missing packages, build release, start ternd on localhost:1883 (ARGS="-v ...")
	@scripts/deps.sh run
	@$(MAKE) --no-print-directory release
	exec build/release/ternd $(ARGS)

release build: ## build the release preset (build/release/)
	@cmake --preset release >/dev/null && cmake --build --preset release

test: ## unit, fuzz (10 s per target), integration, interop and TSan tests
	@scripts/deps.sh test
	@scripts/run-tests.sh

test-tsan: ## only the concurrency test, against a ThreadSanitizer build
	@scripts/deps.sh test
	@cmake --preset tsan >/dev/null && cmake --build --preset tsan --target ternd
	TERND=$(CURDIR)/build/tsan/ternd $(PY) -m pytest -q -p no:cacheprovider tests/interop/test_concurrency.py

# Long fuzzing: each target FUZZ_SECONDS (default 600 = 10 minutes). New inputs are kept in
# build/fuzz-corpus/<target>/ (merge the interesting ones into tests/fuzz/corpus/ by hand);
# crashes are written to build/fuzz-artifacts/.
fuzz: ## run every fuzz target for FUZZ_SECONDS (default 600) each
	@scripts/deps.sh test
	@cmake --preset fuzz >/dev/null && cmake --build --preset fuzz --target $(FUZZ_TARGETS)
	@mkdir -p build/fuzz-artifacts
	@for n in $(FUZZ_TARGETS); do \
	  f=build/fuzz/$$n; t=$${n#fuzz_}; m=$${t%%_*}; \
	  seeds=""; for d in tests/fuzz/corpus/$$t tests/fuzz/corpus/$$m; do \
	    if [ -d "$$d" ]; then seeds=$$d; break; fi; done; \
	  mkdir -p build/fuzz-corpus/$$n; echo "== $$n ($(FUZZ_SECONDS) s, seeds: $${seeds:-none})"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=build/fuzz-artifacts/$$n- build/fuzz-corpus/$$n $$seeds || exit 1; \
	done

install: release ## install ternd, tern, libternclient, headers and tern.pc (PREFIX=/usr/local)
	cmake --install build/release $(if $(PREFIX),--prefix $(PREFIX))

format: ## clang-format -i every C file of src lib tools include tests/unit tests/fuzz
	@scripts/deps.sh format
	clang-format -i $(FORMAT_FILES)

format-check: ## fail if any C file is not formatted
	@scripts/deps.sh format
	clang-format --dry-run --Werror $(FORMAT_FILES)

conformance: ## regenerate docs/CONFORMANCE.md
	$(PY) scripts/conformance.py

clean: ## remove every build tree
	rm -rf build

help:
	@grep -E '^[a-z -]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

bench: ## ternd vs mosquitto side by side (release build), writes bench/results/latest.md
	@scripts/deps.sh bench
	@cmake --preset release >/dev/null && cmake --build --preset release --target ternd tern
	/usr/bin/python3 bench/run_bench.py $(BENCH_ARGS)
