# `make test` runs every suite of the project, installing what is missing.
# `make tour` runs the main example.
# `make install PREFIX=...` installs the C library (see ffi/install.sh).
SHELL := /bin/bash

SUITES := core loom header ffi features redis benches python

.PHONY: test tour install $(SUITES)

test: $(SUITES)
	@echo "==> all suites passed: $(SUITES)"

tour:
	cargo run --release --example tour

PREFIX ?= /usr/local
install:
	PREFIX="$(PREFIX)" bash ffi/install.sh

core:
	bash scripts/test-core.sh

loom:
	bash loom-tests/run.sh

header:
	bash scripts/check-header.sh

ffi:
	bash ffi-tests/run.sh

features:
	bash scripts/test-features.sh

redis:
	bash scripts/test-redis.sh

benches:
	bash scripts/test-benches.sh

python:
	bash scripts/test-python.sh
