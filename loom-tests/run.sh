#!/usr/bin/env bash
# The loom suite: model-checks every state transition of the real breaker
# (see loom-tests/README.md). `make loom` runs it.
#
# The models build breakerbox with `--cfg breakerbox_loom`, so its atomics come
# from loom. They build in release mode and in their own target directory, so
# the normal build cache is never invalidated by the different RUSTFLAGS.
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is required (install a Rust toolchain, 1.75 or later)" >&2
    exit 1
fi

export RUSTFLAGS="--cfg breakerbox_loom"
export CARGO_TARGET_DIR="$ROOT/target/loom"
# Each model sets this bound itself; the variable overrides it for all of them.
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"

suite_start=$SECONDS
step "loom: clippy on the models" \
    cargo clippy -p breakerbox-loom-tests --all-targets --release -- -D warnings
step "loom: build the models (--no-run)" \
    cargo test -p breakerbox-loom-tests --release --tests --no-run
step "loom: check the models (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS)" \
    cargo test -p breakerbox-loom-tests --release --tests -- --nocapture
elapsed=$((SECONDS - suite_start))
echo "==> loom suite took ${elapsed} s (budget: 300 s on 2 cores)"
if [ "$elapsed" -gt 300 ]; then
    echo "==> warning: the loom suite ran over its 300 s budget" >&2
fi
