# metrics-agent
#   make run     build and start the agent on 127.0.0.1:54112 (ARGS="--tick 0.5" to pass flags)
#   make test    build everything and run the whole test suite (ctest)
#   make static  a statically linked binary
#   make examples  the embedding examples in build/cmake/
#   make SANITIZE=1 test   the suite under AddressSanitizer and UBSan

CXX      ?= g++
BUILD    ?= build
CXXFLAGS ?= -O2 -g
WARN     := -Wall -Wextra
STD      := -std=c++17
HEADERS  := metrics_agent.hpp $(wildcard platform/*.hpp)
ifeq ($(SANITIZE),1)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer
CMAKE_SAN := -DMETRICS_AGENT_SANITIZE=ON
BUILD    := build-san
endif

.PHONY: all run test static deps deps-test clean bench examples

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
