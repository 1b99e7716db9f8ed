# The two commands a newcomer needs: `make run` and `make test`.
SWIFT ?= swift
PORT ?= 5020

.PHONY: run test build dependencies clean

dependencies:
	@scripts/install-dependencies.sh

build: dependencies
	$(SWIFT) build

HTTP ?= 127.0.0.1:8080

## Start the bridge on the built-in simulated SEC1000, serving Modbus TCP on port $(PORT) and the
## status page, metrics and health checks on http://$(HTTP)/ (Docs/http.md).
## With mosquitto installed, a broker of its own on a free loopback port, and the MQTT face on it.
run: build
	@scripts/run-bridge.sh $(SWIFT) $(PORT) $(HTTP)

# Tests in flight at once. Each test that runs a bridge holds a dozen descriptors; with every test
# of the suite in flight the process passes 1024, where libmodbus's client (select()) aborts. The
# variable is Swift Testing's (experimental); a toolchain without it runs everything at once.
export SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH ?= 32

## Install what the tests need, then run every test.
test: dependencies
	$(SWIFT) test

clean:
	rm -rf .build .build-release .build-deb .build-asan .build-tsan Fuzz/.build sec1000_*.deb

# The Debian package (Docs/debian.md).
.PHONY: deb test-deb

## sec1000_<version>_<arch>.deb: the release binary, the systemd unit and /etc/sec1000/bridge.yaml.
deb:
	@scripts/install-dependencies.sh deb
	scripts/build-deb.sh

## Build the package, lintian it, install it, check the installed unit, purge it (as root).
test-deb:
	scripts/test-deb.sh

## A real Home Assistant (from PyPI, Python 3.13) discovers the simulated SEC1000 over MQTT and sets
## its export limit (Docs/mqtt.md#checked-with-a-real-home-assistant).
.PHONY: test-home-assistant
test-home-assistant: build
	scripts/check-home-assistant.sh .build/debug/sec1000

# Reliability (Docs/reliability.md): each target stands alone; .ci/run runs them after `make test`.
.PHONY: reliability fuzz sanitize

## The reliability proofs in a release build: the device's view under load, the fault soak,
## hostile clients. Long modes: SEC1000_SOAK_SECONDS, SEC1000_FUZZ_FRAMES, SEC1000_HOSTILE_SECONDS.
reliability: dependencies
	SEC1000_RELIABILITY=1 $(SWIFT) test -c release -Xswiftc -enable-testing --scratch-path .build-release \
		--filter BridgeTests.Reliability

## A short libFuzzer run of each target in Fuzz/ on its seed corpus (FUZZ_SECONDS each, default 60).
fuzz: dependencies
	scripts/fuzz.sh

## Every test, the reliability proofs included, under AddressSanitizer, then ThreadSanitizer.
## Leaks of XCTest and Foundation are suppressed (scripts/lsan-suppressions.txt). ASan builds link
## with lld: gold warns about every ASan symbol it cannot export.
sanitize: export LSAN_OPTIONS = suppressions=$(CURDIR)/scripts/lsan-suppressions.txt
sanitize: dependencies
	$(SWIFT) test --sanitize=address -Xswiftc -use-ld=lld --scratch-path .build-asan
	SEC1000_RELIABILITY=1 $(SWIFT) test --sanitize=address -Xswiftc -use-ld=lld --scratch-path .build-asan \
		--filter BridgeTests.Reliability
	$(SWIFT) test --sanitize=thread --scratch-path .build-tsan
	SEC1000_RELIABILITY=1 $(SWIFT) test --sanitize=thread --scratch-path .build-tsan --filter BridgeTests.Reliability
