# Copycat Lab: a newcomer needs two commands.
#   make run    install missing Debian packages, configure, build, run the demo
#   make test   the same, then run every test through ctest
# Other targets: build, configure, deps, sanitize, coverage, format, format-check, clean, help.
#
# CMake is configured only when $(BUILD_DIR)/build.ninja is missing; afterwards
# Ninja re-runs CMake by itself when a CMakeLists.txt changes. To reconfigure
# with other options: make clean (or rm -rf $(BUILD_DIR)), then make configure CMAKE_FLAGS=...

BUILD_DIR    ?= build
BUILD_TYPE   ?= RelWithDebInfo
ASAN_DIR     ?= build-asan
COVERAGE_DIR ?= build-coverage
CMAKE_FLAGS  ?=
CMAKE        ?= cmake
CTEST        ?= ctest
CTEST_JOBS   ?= 2
GCOVR        ?= gcovr
CLANG_FORMAT ?= clang-format
DEMO         ?= $(BUILD_DIR)/app/copycat-demo
# Arguments for the demo: make run ARGS="..."
ARGS         ?=
# Seeds per ctest shard of the simulation sweep in the instrumented builds,
# which run 10-20x slower than build/ (whose sweep keeps the tests' default).
ASAN_SWEEP_SEEDS     ?= 500
COVERAGE_SWEEP_SEEDS ?= 250

FORMAT_DIRS  := engine app tests widgets
COVERAGE_FILTER := engine/raft/

# Tests never need a display.
CTEST_RUN = QT_QPA_PLATFORM=$${QT_QPA_PLATFORM:-offscreen} \
	$(CTEST) --output-on-failure --no-tests=error -j$(CTEST_JOBS) --test-dir
SANITIZER_ENV = ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1} \
	UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

.DEFAULT_GOAL := build
.PHONY: run test build configure deps sanitize coverage format format-check clean help

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

FORMAT_FILES = $(if $(wildcard $(FORMAT_DIRS)),\
	$(shell find $(wildcard $(FORMAT_DIRS)) -type f \( -name '*.h' -o -name '*.cpp' \)))

format:
	@command -v $(CLANG_FORMAT) >/dev/null || { echo "$(CLANG_FORMAT) not found: apt-get install clang-format" >&2; exit 1; }
	$(if $(FORMAT_FILES),$(CLANG_FORMAT) -i $(FORMAT_FILES))

format-check:
	@command -v $(CLANG_FORMAT) >/dev/null || { echo "$(CLANG_FORMAT) not found: apt-get install clang-format" >&2; exit 1; }
	$(if $(FORMAT_FILES),$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_FILES))

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(COVERAGE_DIR)

help:
	@sed -n '1,/^$$/p' Makefile
