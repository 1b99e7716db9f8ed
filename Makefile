# The two commands a newcomer needs: `make run` and `make test`.
SWIFT ?= swift
PORT ?= 5020

.PHONY: run test build dependencies clean

dependencies:
	@scripts/install-dependencies.sh

build: dependencies
	$(SWIFT) build

## Start the bridge on the built-in simulated SEC1000, serving Modbus TCP on port $(PORT).
run: build
	$(SWIFT) run sec1000 bridge --simulate --listen 0.0.0.0:$(PORT)

## Install what the tests need, then run every test.
test: dependencies
	$(SWIFT) test

clean:
	rm -rf .build
