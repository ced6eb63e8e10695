# metrics-agent
#   make run     build and start the agent on 127.0.0.1:54112 (ARGS="--tick 0.5" to pass flags)
#   make test    build everything and run the whole test suite (ctest)
#   make test-slow  the slow tests (ctest label slow: connection churn)
#   make static  a statically linked binary
#   make examples  the embedding examples in build/cmake/
#   make cross   static binaries for aarch64, armhf and riscv64, each run once under qemu
#   make dist    dist/metrics-agent-<version>-<arch> for every target, and dist/SHA256SUMS
#   make windows  a static Windows x64 metrics-agent.exe (mingw-w64)
#   make poll    the agent over the portable poll() backend instead of epoll
#   make SANITIZE=1 test   the suite under AddressSanitizer and UBSan
#   make fuzz SECONDS=N    build the libFuzzer harnesses (clang) and run each N seconds

CXX      ?= g++
BUILD    ?= build
CXXFLAGS ?= -O2 -g
WARN     := -Wall -Wextra
STD      := -std=c++17
HEADERS  := metrics_agent.hpp $(wildcard platform/*.hpp) $(wildcard tools/*.hpp)
ifeq ($(SANITIZE),1)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer
CMAKE_SAN := -DMETRICS_AGENT_SANITIZE=ON
BUILD    := build-san
endif

.PHONY: all run test test-slow static deps deps-test clean bench examples cross dist fuzz windows poll

all: $(BUILD)/metrics-agent

deps:
	@sh scripts/deps.sh build

deps-test:
	@sh scripts/deps.sh test

$(BUILD)/metrics-agent: main.cpp $(HEADERS) | deps
	@mkdir -p $(BUILD)
	$(CXX) $(STD) $(CXXFLAGS) $(WARN) $(SANFLAGS) -I. main.cpp -o $@ -pthread

run: $(BUILD)/metrics-agent
	./$(BUILD)/metrics-agent $(ARGS)

# The release flags live in scripts/static-build.sh (also used by make cross,
# make dist and the test suite); it fails on any compiler or linker warning.
static: $(BUILD)/metrics-agent-static
$(BUILD)/metrics-agent-static: main.cpp $(HEADERS) scripts/static-build.sh | deps
	sh scripts/static-build.sh $@
	@sh scripts/check-size.sh $$(uname -m) $@

# Static cross builds; each binary prints one snapshot under qemu-user.
CROSS_TARGETS := aarch64-linux-gnu:aarch64:aarch64 arm-linux-gnueabihf:arm:armhf riscv64-linux-gnu:riscv64:riscv64
cross: main.cpp $(HEADERS)
	@sh scripts/deps.sh cross
	@for spec in $(CROSS_TARGETS); do \
	  t=$${spec%%:*}; rest=$${spec#*:}; q=$${rest%%:*}; arch=$${rest#*:}; out=$(BUILD)/metrics-agent-$$t; \
	  echo "== $$t"; \
	  sh scripts/static-build.sh $$out $$t && sh scripts/check-size.sh $$arch $$out && \
	  qemu-$$q $$out --once | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print("qemu-%s --once: cpu %s%%, memory %s%%, %d cores" % (sys.argv[1], d["cpu"]["usage_percent"], d["memory"]["usage_percent"], len(d["cpu"]["per_core"])))' $$q \
	  || exit 1; \
	done

# Release artifacts: the static binary of every Linux target, named
# metrics-agent-<version>-<arch>, each within its size budget, and SHA256SUMS.
VERSION := $(shell sed -n 's/^\#define METRICS_AGENT_VERSION "\(.*\)"/\1/p' metrics_agent.hpp)
DIST_TARGETS := native:$(shell uname -m) aarch64-linux-gnu:aarch64 arm-linux-gnueabihf:armhf riscv64-linux-gnu:riscv64
dist: main.cpp $(HEADERS) | deps
	@sh scripts/deps.sh cross
	@rm -rf dist && mkdir -p dist $(BUILD)/dist
	@for spec in $(DIST_TARGETS); do \
	  t=$${spec%%:*}; arch=$${spec#*:}; name=metrics-agent-$(VERSION)-$$arch; \
	  if [ $$t = native ]; then t=; fi; \
	  sh scripts/static-build.sh $(BUILD)/dist/$$name $$t && sh scripts/check-size.sh $$arch $(BUILD)/dist/$$name \
	    && cp $(BUILD)/dist/$$name dist/ || exit 1; \
	done
	@if [ -f $(BUILD)/metrics-agent.exe ]; then cp $(BUILD)/metrics-agent.exe dist/metrics-agent-$(VERSION)-windows-x86_64.exe; fi
	cd dist && sha256sum metrics-agent-* > SHA256SUMS && cat SHA256SUMS

# Windows x64: static and stripped, built with Debian's mingw-w64 (posix
# threads); the tests run it under wine (ctest -L windows).
windows: main.cpp $(HEADERS)
	@sh scripts/deps.sh windows
	sh scripts/build-windows.sh agent $(BUILD)
	@ls -l $(BUILD)/metrics-agent.exe | awk '{print $$5 " bytes"}'

poll: $(BUILD)/metrics-agent-poll
$(BUILD)/metrics-agent-poll: main.cpp $(HEADERS) | deps
	@mkdir -p $(BUILD)
	$(CXX) $(STD) $(CXXFLAGS) $(WARN) $(SANFLAGS) -DMETRICS_AGENT_USE_POLL -I. main.cpp -o $@ -pthread

test: deps-test
	cmake -S . -B $(BUILD)/cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_SAN) > /dev/null
	cmake --build $(BUILD)/cmake -j$$(nproc)
	@start=$$(date +%s); cd $(BUILD)/cmake && ctest --output-on-failure --timeout 900 -j$$(( $$(nproc) * 2 )) -LE slow; rc=$$?; \
	  echo "ctest took $$(( $$(date +%s) - start )) s (-j$$(( $$(nproc) * 2 )))"; exit $$rc

# tests/fuzz/fuzz_*.cpp, each run SECONDS seconds from its seeds in
# tests/fuzz/corpus/<name>/; what they add and find stays in $(BUILD)/fuzz/runs/.
SECONDS ?= 60
fuzz:
	@sh scripts/deps.sh fuzz
	cmake -S tests/fuzz -B $(BUILD)/fuzz -DCMAKE_CXX_COMPILER=clang++ > /dev/null
	cmake --build $(BUILD)/fuzz -j$$(nproc)
	@for src in tests/fuzz/fuzz_*.cpp; do \
	  n=$$(basename $$src .cpp); s=$${n#fuzz_}; \
	  sh tests/fuzz/run.sh $(BUILD)/fuzz/$$n tests/fuzz/corpus/$$s $(BUILD)/fuzz/runs/$$s $(SECONDS) || exit 1; \
	done

# The slow tests (label slow): 100,000-connection churn.
test-slow: deps-test
	cmake -S . -B $(BUILD)/cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_SAN) > /dev/null
	cmake --build $(BUILD)/cmake -j$$(nproc) --target metrics-agent
	cd $(BUILD)/cmake && ctest --output-on-failure -L slow

# The embedding examples (echo_server, embedded, httplib_app) via CMake.
examples: deps-test
	cmake -S . -B $(BUILD)/cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
	cmake --build $(BUILD)/cmake -j$$(nproc) --target echo_server embedded httplib_app

bench: deps-test
	@sh scripts/deps.sh bench || echo "bench: no Boost or websocketpp headers; the peers in bench/peers/ are skipped"
	cmake -S . -B $(BUILD)/cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
	cmake --build $(BUILD)/cmake -j$$(nproc) --target load_client scrape_bench collect_bench metrics-agent floor_server
	cmake --build $(BUILD)/cmake -j$$(nproc) --target beast_server websocketpp_server \
	  || echo "bench: peers skipped (beast_server and websocketpp_server need libboost1.81-dev and libwebsocketpp-dev)"

clean:
	rm -rf build build-san
