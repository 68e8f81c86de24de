# Thin wrapper over CMake. `make test` and `make demo` install what is missing
# (Debian packages, Kafka jars) before building; see README.md.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60

.PHONY: all deps build build-asan test test-unit test-asan demo install format clean bench fuzz

all: build

deps:
	@scripts/install-deps.sh

# A build directory is configured once: build.ninja is written only by a
# configure that succeeded (a failed one, e.g. before the dependencies were
# installed, leaves CMakeCache.txt behind and is run again).
$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DLUNAMATCH_WERROR=ON $(CMAKE_ARGS)

build: $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

$(ASAN_BUILD)/build.ninja:
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DLUNAMATCH_WERROR=ON -DLUNAMATCH_SANITIZE=address,undefined $(CMAKE_ARGS)

build-asan: $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# The whole suite: dependencies, a clean build, every test; then the
# sanitizer builds (address+undefined, thread) and their tests.
test: deps
	@CMAKE_ARGS="$(CMAKE_ARGS)" scripts/run-tests.sh

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

# The build comes after the dependencies even under make -j.
demo: deps
	@$(MAKE) --no-print-directory build
	@scripts/demo.sh $(DEMO_ARGS)

install: build
	cmake --install $(BUILD)

format:
	find common services tools tests bench clients -name '*.[ch]' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-tsan $(FUZZ_BUILD)

# Benchmarks: speed and memory of the hot paths; results go to bench/results/
# (see bench/README.md). BENCH_ARGS picks some: make bench BENCH_ARGS=index
bench: $(BUILD)/build.ninja
	BUILD=$(BUILD) bench/run.sh $(BENCH_ARGS)

# Fuzzing with libFuzzer (clang, installed by `scripts/install-deps.sh fuzz`):
# each target of tests/fuzz/ for FUZZ_SECONDS; FUZZ_TARGETS picks some:
# make fuzz FUZZ_TARGETS=ingest FUZZ_SECONDS=600. Not part of `make test`;
# see docs/CONTRIBUTING.md (Fuzzing).
fuzz:
	@scripts/install-deps.sh fuzz
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(FUZZ_TARGETS)
