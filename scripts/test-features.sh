#!/usr/bin/env bash
# The optional features: each builds alone and all build together, lint-clean;
# then the integration tests (async, tower, metrics, tracing, registry, LLM)
# and the self-contained examples run. The tests and examples that need heavy
# dependencies are the `integration/` crate (breakerbox-integration).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

features=(tower metrics tracing llm anyhow)
# The redis feature builds here too when the crate has it; its tests need a
# server and run in their own suite.
if sed -n '/^\[features\]/,/^\[/p' Cargo.toml | grep -q '^redis *='; then
    features+=(redis)
fi

step "clippy, no features" cargo clippy --lib --no-default-features -- -D warnings
for feature in "${features[@]}"; do
    step "clippy, feature $feature alone" \
        cargo clippy --lib --no-default-features --features "$feature" -- -D warnings
done
step "clippy, all features, all targets" cargo clippy --workspace --all-features --all-targets -- -D warnings

ours="tower,metrics,tracing,llm"
tests=()
for file in integration/tests/{async,tower,metrics,tracing,llm}_*.rs; do
    [ -e "$file" ] && tests+=(--test "$(basename "$file" .rs)")
done
step "integration tests ($ours)" cargo test -p breakerbox-integration "${tests[@]}"
step "registry tests ($ours)" cargo test --features "$ours" --test registry_named
step "classification through anyhow errors" cargo test --features anyhow --test classify
step "doc tests (anyhow)" cargo test --features anyhow --doc -- Builder::exclude
# The doc examples of the integration modules (the core suite runs the rest).
step "doc tests ($ours)" cargo test --features "$ours" --doc -- \
    src/integrations/

step "example http_tower" cargo run --quiet -p breakerbox-integration --example http_tower
step "example llm" cargo run --quiet -p breakerbox-integration --example llm
step "example metrics_prometheus" cargo run --quiet -p breakerbox-integration --example metrics_prometheus -- --once
