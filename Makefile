# Tern - thin wrapper over CMake presets (see README.md).
.PHONY: run test test-tsan fuzz bench build release install format format-check conformance clean

run: ## install missing packages, build release, start ternd on localhost:1883
	@scripts/deps.sh run
	@cmake --preset release >/dev/null && cmake --build --preset release
	exec build/release/ternd $(ARGS)

release build:
	@cmake --preset release >/dev/null && cmake --build --preset release

test: ## unit, fuzz (short), integration, interop and TSan tests
	@scripts/deps.sh test
	@scripts/run-tests.sh

test-tsan:
	@scripts/deps.sh test
	@cmake --preset tsan >/dev/null && cmake --build --preset tsan --target ternd
	TERND=$(CURDIR)/build/tsan/ternd /usr/bin/python3 -m pytest -q tests/interop/test_concurrency.py

fuzz: ## each fuzz target for FUZZ_SECONDS (default 600)
	@scripts/deps.sh test
	@cmake --preset fuzz >/dev/null && cmake --build --preset fuzz
	@for f in build/fuzz/fuzz_*; do m=$${f##*/fuzz_}; mkdir -p build/fuzz-corpus/$$m; \
	  echo "== $$f"; $$f -max_total_time=$${FUZZ_SECONDS:-600} build/fuzz-corpus/$$m tests/fuzz/corpus/$$m || exit 1; done

install: release
	cmake --install build/release

format:
	clang-format -i $$(git ls-files 'src/*.[ch]' 'lib/*.[ch]' 'tools/*.[ch]' 'include/*.h' 'tests/unit/*.[ch]' 'tests/fuzz/*.c')

format-check:
	clang-format --dry-run --Werror $$(git ls-files 'src/*.[ch]' 'lib/*.[ch]' 'tools/*.[ch]' 'include/*.h' 'tests/unit/*.[ch]' 'tests/fuzz/*.c')

conformance:
	/usr/bin/python3 scripts/conformance.py

clean:
	rm -rf build
