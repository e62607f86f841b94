# libmfa — top-level convenience targets over CMake. Everything lands in build/.
#   make            build the library, the `mfa` tool and the tests (Release)
#   make bench      the main job: `mfa bench` on the default (cpu) backend
#   make check      `mfa check`: the shared case table against the float64 reference
#   make test       build, then run every test (ctest), ending with its summary
#   make sanitize   ASan + UBSan build in build-sanitize/ and its tests
#   make install    install under PREFIX (default /usr/local)
# Set WERROR=1 to turn warnings into errors (CI does).

BUILD ?= build
SANITIZE_BUILD ?= build-sanitize
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
WERROR ?= 0
CMAKE_FLAGS ?=
ifeq ($(WERROR),1)
CMAKE_FLAGS += -DMFA_WERROR=ON
endif

.PHONY: all build bench check test sanitize install clean

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

bench: build
	./$(BUILD)/mfa bench

check: build
	./$(BUILD)/mfa check

test: build
	ctest --test-dir $(BUILD) --output-on-failure

sanitize:
	cmake -S . -B $(SANITIZE_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMFA_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(SANITIZE_BUILD) -j $(JOBS)
	ctest --test-dir $(SANITIZE_BUILD) --output-on-failure

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(SANITIZE_BUILD)
