# Copycat Lab: a newcomer needs two commands.
#   make run    install missing Debian packages, configure, build, run the demo
#   make test   the same, then run every test through ctest
# Other targets: build, configure, deps, sanitize, coverage, fuzz, bench-storage,
# bench-codec, bench, format, format-check, clean, help.
#   make fuzz            the libFuzzer targets (clang) for FUZZ_SECONDS s each
#   make bench-storage   storage micro-benchmarks on real files (BENCH_ARGS="--dir=...")
#   make bench-codec     encoding/decoding micro-benchmarks (operations, snapshots)
#   make bench           copycat-bench's standard set (minutes); JSON + PNG charts in $(BENCH_OUT)
#
# CMake is configured only when $(BUILD_DIR)/build.ninja is missing; afterwards
# Ninja re-runs CMake by itself when a CMakeLists.txt changes. To reconfigure
# with other options: make clean (or rm -rf $(BUILD_DIR)), then make configure CMAKE_FLAGS=...

BUILD_DIR    ?= build
BUILD_TYPE   ?= RelWithDebInfo
ASAN_DIR     ?= build-asan
COVERAGE_DIR ?= build-coverage
FUZZ_DIR     ?= build-fuzz
FUZZ_SECONDS ?= 60
# Extra libFuzzer flags for make fuzz, e.g. FUZZ_ARGS=-jobs=2
FUZZ_ARGS    ?=
CMAKE_FLAGS  ?=
CMAKE        ?= cmake
CTEST        ?= ctest
CTEST_JOBS   ?= 2
GCOVR        ?= gcovr
CLANG_FORMAT ?= clang-format
DEMO         ?= $(BUILD_DIR)/app/copycat-demo
# Arguments for the demo: make run ARGS="..."
ARGS         ?=
# Arguments for copycat-storage-bench: make bench-storage BENCH_ARGS="--dir=/var/tmp"
BENCH_ARGS   ?=
# Where make bench writes its JSON lines and charts, and extra copycat-bench
# options for it: make bench COPYCAT_BENCH_ARGS="--data /var/tmp --duration 5"
BENCH_OUT          ?= $(BUILD_DIR)/bench-results
COPYCAT_BENCH_ARGS ?=
# Seeds per ctest shard of the simulation sweep in the instrumented builds,
# which run 10-20x slower than build/ (whose sweep keeps the tests' default).
ASAN_SWEEP_SEEDS     ?= 500
COVERAGE_SWEEP_SEEDS ?= 250

FORMAT_DIRS  := engine app tests widgets bench
COVERAGE_FILTER := engine/raft/

# Tests never need a display.
CTEST_RUN = QT_QPA_PLATFORM=$${QT_QPA_PLATFORM:-offscreen} \
	$(CTEST) --output-on-failure --no-tests=error -j$(CTEST_JOBS) --test-dir
SANITIZER_ENV = ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1} \
	UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

.DEFAULT_GOAL := build
.PHONY: run test build configure deps sanitize coverage fuzz bench-storage bench-codec bench format format-check clean help

run: build
	$(DEMO) $(ARGS)

test: build
	$(CTEST_RUN) $(BUILD_DIR)

build: configure
	$(CMAKE) --build $(BUILD_DIR)

configure: deps $(BUILD_DIR)/build.ninja

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/build.ninja: | deps
	$(CMAKE) -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

# The core and simulator with their tests under AddressSanitizer + UndefinedBehaviorSanitizer.
sanitize: deps $(ASAN_DIR)/build.ninja
	$(CMAKE) --build $(ASAN_DIR)
	$(SANITIZER_ENV) $(CTEST_RUN) $(ASAN_DIR)

$(ASAN_DIR)/build.ninja: | deps
	$(CMAKE) -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DCOPYCAT_SANITIZE=ON -DCOPYCAT_CORE_ONLY=ON \
		-DCOPYCAT_SWEEP_SEEDS_PER_SHARD=$(ASAN_SWEEP_SEEDS) $(CMAKE_FLAGS)

# Line coverage of engine/raft by the core and simulator tests (HTML report in $(COVERAGE_DIR)/coverage/).
# The report is printed even when a test fails; the target still fails then.
coverage: deps $(COVERAGE_DIR)/build.ninja
	$(CMAKE) --build $(COVERAGE_DIR)
	find $(COVERAGE_DIR) -name '*.gcda' -delete
	mkdir -p $(COVERAGE_DIR)/coverage
	status=0; $(CTEST_RUN) $(COVERAGE_DIR) || status=$$?; \
	$(GCOVR) --root . --filter '$(COVERAGE_FILTER)' -j 2 --txt \
		--html-details $(COVERAGE_DIR)/coverage/index.html --print-summary $(COVERAGE_DIR) && \
	exit $$status

$(COVERAGE_DIR)/build.ninja: | deps
	$(CMAKE) -S . -B $(COVERAGE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
		-DCOPYCAT_COVERAGE=ON -DCOPYCAT_CORE_ONLY=ON \
		-DCOPYCAT_SWEEP_SEEDS_PER_SHARD=$(COVERAGE_SWEEP_SEEDS) $(CMAKE_FLAGS)

# The three libFuzzer targets of tests/fuzz (clang only), each run for
# FUZZ_SECONDS on a temporary copy of its seed corpus, with its scratch files
# (TMPDIR) in the same temporary directory, on /dev/shm when there is one;
# a crash fails the target (its reproducer stays in the printed directory).
FUZZ_TARGETS := fuzz_segment_reader fuzz_meta_reader fuzz_snapshot_chunk_reader
# clang, and libFuzzer's runtime, which Debian 12 ships in libclang-rt-14-dev
# (only a Recommends of clang's packages); `make fuzz` has deps install them.
FUZZ_PACKAGES := clang libclang-rt-14-dev

fuzz: export COPYCAT_EXTRA_PACKAGES += $(FUZZ_PACKAGES)
fuzz: deps $(FUZZ_DIR)/build.ninja
	$(CMAKE) --build $(FUZZ_DIR) --target $(FUZZ_TARGETS)
	@set -e; \
	if [ -d /dev/shm ] && [ -w /dev/shm ]; then base=/dev/shm; else base=$${TMPDIR:-/tmp}; fi; \
	work=$$(mktemp -d "$$base/copycat-fuzz.XXXXXX"); \
	for target in $(FUZZ_TARGETS); do \
		dir="$$work/$$target"; \
		mkdir -p "$$dir/corpus" "$$dir/crashes" "$$dir/tmp"; \
		cp -R tests/fuzz/corpus/$$target/. "$$dir/corpus/"; \
		echo "fuzz: $$target for $(FUZZ_SECONDS) s in $$dir"; \
		if ! TMPDIR="$$dir/tmp" $(FUZZ_DIR)/tests/fuzz/$$target -max_total_time=$(FUZZ_SECONDS) \
			-print_final_stats=1 -artifact_prefix="$$dir/crashes/" $(FUZZ_ARGS) "$$dir/corpus"; then \
			echo "fuzz: $$target FAILED; reproducer(s) kept in $$dir/crashes:" >&2; \
			ls -l "$$dir/crashes" >&2; \
			exit 1; \
		fi; \
	done; \
	rm -rf "$$work"

$(FUZZ_DIR)/build.ninja: | deps
	@command -v clang++ >/dev/null || { echo "clang++ not found: apt-get install $(FUZZ_PACKAGES)" >&2; exit 1; }
	CC=clang CXX=clang++ $(CMAKE) -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DCOPYCAT_FUZZ=ON -DCOPYCAT_CORE_ONLY=ON $(CMAKE_FLAGS)

# Storage micro-benchmarks (Google Benchmark) on real files with real
# fdatasync; about a minute. Not a test: figures are printed, not asserted.
bench-storage: configure
	$(CMAKE) --build $(BUILD_DIR) --target copycat-storage-bench
	$(BUILD_DIR)/bench/copycat-storage-bench $(BENCH_ARGS)

# Encoding and decoding micro-benchmarks (Google Benchmark): operations and
# a 10,000-key snapshot; seconds. Figures are printed, not asserted.
bench-codec: configure
	$(CMAKE) --build $(BUILD_DIR) --target copycat-codec-bench
	$(BUILD_DIR)/bench/copycat-codec-bench $(BENCH_ARGS)

# The cluster benchmark's standard set: every scenario with in-process servers
# (fsyncs counted), then failover again with copycatd processes and SIGKILL.
# Several minutes; figures are printed and kept, never asserted.
bench: configure
	$(CMAKE) --build $(BUILD_DIR) --target copycat-bench copycatd
	rm -rf $(BENCH_OUT)
	$(BUILD_DIR)/bench/copycat-bench all --json $(BENCH_OUT)/all/results.json $(COPYCAT_BENCH_ARGS)
	$(BUILD_DIR)/bench/copycat-bench failover --launcher processes \
		--json $(BENCH_OUT)/failover-processes/results.json $(COPYCAT_BENCH_ARGS)

FORMAT_FILES = $(if $(wildcard $(FORMAT_DIRS)),\
	$(shell find $(wildcard $(FORMAT_DIRS)) -type f \( -name '*.h' -o -name '*.cpp' \)))

format:
	@command -v $(CLANG_FORMAT) >/dev/null || { echo "$(CLANG_FORMAT) not found: apt-get install clang-format" >&2; exit 1; }
	$(if $(FORMAT_FILES),$(CLANG_FORMAT) -i $(FORMAT_FILES))

format-check:
	@command -v $(CLANG_FORMAT) >/dev/null || { echo "$(CLANG_FORMAT) not found: apt-get install clang-format" >&2; exit 1; }
	$(if $(FORMAT_FILES),$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_FILES))

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(COVERAGE_DIR) $(FUZZ_DIR)

help:
	@sed -n '1,/^$$/p' Makefile
