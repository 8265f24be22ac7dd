#!/usr/bin/env bash
# The core: formatting, lints, unit/integration/doc tests, and miri.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
step "cargo test (core)" cargo test -p breakerbox
# The core tests that need proptest or an async runtime live in integration/.
step "cargo test (model, async calls)" cargo test -p breakerbox-integration --test model --test async_call
step "cargo doc (-D warnings)" env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "==> rustup component add miri rust-src --toolchain nightly"
    rustup component add miri rust-src --toolchain nightly
fi
# The core's unit tests and rule tests; long property and stress runs skip under miri.
step "miri (core)" env MIRIFLAGS="-Zmiri-disable-isolation" \
    cargo +nightly miri test -p breakerbox --lib --test rules
