# metrics-agent
#   make run     build and start the agent on 127.0.0.1:54112 (ARGS="--tick 0.5" to pass flags)
#   make test    build everything and run the whole test suite (ctest)
#   make static  a statically linked binary
#   make examples  the embedding examples in build/cmake/
#   make cross   static binaries for aarch64, armhf and riscv64, each run once under qemu
#   make windows  a static Windows x64 metrics-agent.exe (mingw-w64)
#   make poll    the agent over the portable poll() backend instead of epoll
#   make SANITIZE=1 test   the suite under AddressSanitizer and UBSan

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

.PHONY: all run test static deps deps-test clean bench examples cross windows poll

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

static: $(BUILD)/metrics-agent-static
$(BUILD)/metrics-agent-static: main.cpp $(HEADERS) | deps
	@mkdir -p $(BUILD)
	$(CXX) $(STD) -O2 $(WARN) -I. main.cpp -o $@ -static -pthread -Wl,--whole-archive -lpthread -Wl,--no-whole-archive
	strip $@

# Static cross builds; each binary prints one snapshot under qemu-user.
CROSS_TARGETS := aarch64-linux-gnu:aarch64 arm-linux-gnueabihf:arm riscv64-linux-gnu:riscv64
cross: main.cpp $(HEADERS)
	@sh scripts/deps.sh cross
	@mkdir -p $(BUILD)/cross-include
	@ln -sf /usr/include/picojson.h $(BUILD)/cross-include/picojson.h
	@for pair in $(CROSS_TARGETS); do \
	  t=$${pair%%:*}; q=$${pair#*:}; out=$(BUILD)/metrics-agent-$$t; \
	  echo "== $$t"; \
	  rm -f $$out $$out.log; \
	  if ! $$t-g++ $(STD) -O2 $(WARN) -Wno-psabi -I. -I$(BUILD)/cross-include main.cpp -o $$out -static -pthread \
	    > $$out.log 2>&1; then cat $$out.log; echo "$$t: compile failed" >&2; exit 1; fi; \
	  grep -v -e getaddrinfo -e 'in function' $$out.log; \
	  test -s $$out && $$t-strip $$out && ls -l $$out | awk '{print $$5 " bytes"}' && \
	  qemu-$$q $$out --once | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print("qemu-%s --once: cpu %s%%, memory %s%%, %d cores" % (sys.argv[1], d["cpu"]["usage_percent"], d["memory"]["usage_percent"], len(d["cpu"]["per_core"])))' $$q \
	  || exit 1; \
	done

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
	cd $(BUILD)/cmake && ctest --output-on-failure --timeout 600

# The embedding examples (echo_server, embedded, httplib_app) via CMake.
examples: deps-test
	cmake -S . -B $(BUILD)/cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
	cmake --build $(BUILD)/cmake -j$$(nproc) --target echo_server embedded httplib_app

bench: deps-test
	cmake -S . -B $(BUILD)/cmake -DCMAKE_BUILD_TYPE=Release > /dev/null
	cmake --build $(BUILD)/cmake -j$$(nproc) --target load_client scrape_bench collect_bench metrics-agent

clean:
	rm -rf build build-san
