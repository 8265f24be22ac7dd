#!/usr/bin/env bash
# The C header: regenerate include/breakerbox.h with the pinned cbindgen and
# fail with a diff if it differs from the committed one; then check that it
# compiles cleanly as C11 and C++17 (with the C++ wrapper).
#
#   bash scripts/check-header.sh            check
#   bash scripts/check-header.sh --update   rewrite include/breakerbox.h
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

CBINDGEN_VERSION="0.29.4"

need_cargo_bin cbindgen cbindgen "$CBINDGEN_VERSION"
need_cmd cc gcc
need_cmd c++ g++

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

step "cbindgen $CBINDGEN_VERSION" cbindgen --quiet --config ffi/cbindgen.toml --output "$tmp/breakerbox.h" ffi/src/lib.rs

if [ "${1:-}" = "--update" ]; then
    cp "$tmp/breakerbox.h" include/breakerbox.h
    echo "==> include/breakerbox.h updated"
fi

if ! diff -u include/breakerbox.h "$tmp/breakerbox.h"; then
    echo "FAIL: include/breakerbox.h is out of date with ffi/src;" \
        "run 'bash scripts/check-header.sh --update' and commit the result" >&2
    exit 1
fi
echo "==> include/breakerbox.h is up to date"

printf '#include "breakerbox.h"\nint main(void) { return (int)cb_config_default().fail_max - 5; }\n' >"$tmp/c.c"
printf '#include "breakerbox.hpp"\nint main() { return breakerbox::Breaker::version().empty() ? 1 : 0; }\n' >"$tmp/cpp.cpp"
warn=(-Wall -Wextra -Wpedantic -Werror)
step "header compiles as C11" cc -std=c11 "${warn[@]}" -Iinclude -fsyntax-only "$tmp/c.c"
step "header compiles as C++17" c++ -std=c++17 "${warn[@]}" -Iinclude -fsyntax-only "$tmp/cpp.cpp"
step "breakerbox.h alone compiles as C++17" c++ -std=c++17 "${warn[@]}" -Iinclude -fsyntax-only -x c++ "$tmp/c.c"
echo "==> header: PASS"
