#!/usr/bin/env bash
# The C ABI from four hosts: C (plain, AddressSanitizer/UBSan, valgrind), the
# README's C example, C++ (the RAII wrapper), Go (cgo) and Python (ctypes).
# Installs the toolchains it needs when missing. Exits non-zero on any failure.
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"
trap 'rc=$?; if [ "$rc" -ne 0 ]; then echo "==> ffi: FAIL (exit $rc)" >&2; fi' EXIT

need_cmd cc gcc
need_cmd c++ g++
need_cmd valgrind valgrind
need_cmd go golang-go
need_cmd python3 python3

BUILD="$ROOT/ffi-tests/build"
STATIC="$BUILD/static"  # only libbreakerbox.a: -lbreakerbox links it statically
SHARED="$BUILD/shared"  # only libbreakerbox.so, for ctypes
rm -rf "$STATIC" "$SHARED"
mkdir -p "$STATIC" "$SHARED"

TARGET_DIR="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
step "cargo build --release (staticlib + cdylib)" cargo build --release --lib
cp "$TARGET_DIR/release/libbreakerbox.a" "$STATIC/"
cp "$TARGET_DIR/release/libbreakerbox.so" "$SHARED/"

WARN=(-Wall -Wextra -Wpedantic -Werror)
LINK=(-L"$STATIC" -lbreakerbox -lpthread -ldl -lm)
passed=()

# --- C ----------------------------------------------------------------------
c_build() { # OUTPUT EXTRA_FLAGS...
    local out="$1"
    shift
    cc -std=c11 "${WARN[@]}" -g -O1 "$@" -Iinclude ffi-tests/c/test_breaker.c "${LINK[@]}" -o "$out"
}

step "C: build" c_build "$BUILD/test_c"
step "C: run" "$BUILD/test_c"
passed+=(c)

step "C: build with ASan/UBSan" c_build "$BUILD/test_c_asan" \
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
step "C: run under ASan/UBSan" env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$BUILD/test_c_asan"
passed+=(c-asan-ubsan)

valgrind_run() {
    local log="$BUILD/valgrind.log"
    if ! valgrind --quiet --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all \
        --error-exitcode=1 --log-file="$log" "$BUILD/test_c"; then
        cat "$log"
        echo "C under valgrind: FAIL" >&2
        return 1
    fi
    if [ -s "$log" ]; then # --quiet: anything logged is an error or a leak
        cat "$log"
        echo "C under valgrind: FAIL (see the report above)" >&2
        return 1
    fi
    echo "C under valgrind: PASS (0 errors, 0 bytes leaked or still reachable)"
}
step "C: run under valgrind" valgrind_run
passed+=(c-valgrind)

# --- the README's C example, exactly as written ------------------------------
readme_example() {
    local src="$BUILD/readme_example.c"
    awk '/<!-- section:c -->/ { inside = 1 }
         /<!-- \/section:c -->/ { inside = 0 }
         inside && /^```/ { if (code) { code = 0; done = 1 } else if ($0 == "```c" && !done) { code = 1 }; next }
         inside && code { print }' README.md >"$src"
    if [ ! -s "$src" ]; then
        echo "README example: FAIL (no \`\`\`c block inside the section:c markers of README.md)" >&2
        return 1
    fi
    if ! cc -std=c11 "${WARN[@]}" -Iinclude "$src" "${LINK[@]}" -o "$BUILD/readme_example"; then
        echo "README example: FAIL (does not compile as written)" >&2
        return 1
    fi
    local output
    if ! output="$("$BUILD/readme_example")"; then
        echo "README example: FAIL (exited non-zero)" >&2
        return 1
    fi
    echo "$output"
    if ! grep -qx "breaker is open" <<<"$output"; then
        echo "README example: FAIL (expected the line 'breaker is open')" >&2
        return 1
    fi
    echo "README example: PASS ($(wc -l <"$src") lines compiled and run)"
}
step "README C example" readme_example
passed+=(readme-example)

# --- C++ ----------------------------------------------------------------------
step "C++: build" c++ -std=c++17 "${WARN[@]}" -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
    -Iinclude ffi-tests/cpp/test_wrapper.cpp "${LINK[@]}" -pthread -o "$BUILD/test_cpp"
step "C++: run (ASan/UBSan)" env ASAN_OPTIONS=detect_leaks=1 "$BUILD/test_cpp"
passed+=(cpp)

# --- Go -----------------------------------------------------------------------
go_test() {
    cd "$ROOT/ffi-tests/go"
    local rc=0
    env GOFLAGS=-mod=mod GOCACHE="$BUILD/go-cache" GOPATH="$BUILD/go-path" CGO_ENABLED=1 \
        go test -race -count=1 -v ./... 2>&1 | tee "$BUILD/go-test.log" || rc=$?
    cd "$ROOT"
    if [ "$rc" -ne 0 ]; then
        echo "Go tests: FAIL" >&2
        return 1
    fi
    echo "Go tests: PASS ($(grep -c '^--- PASS' "$BUILD/go-test.log") tests)"
}
step "Go: go test -race" go_test
passed+=(go)

# --- Python -------------------------------------------------------------------
step "Python: ctypes" env BREAKERBOX_LIB="$SHARED/libbreakerbox.so" \
    python3 ffi-tests/python/test_breakerbox.py
passed+=(python)

echo "==> ffi: PASS (${passed[*]})"
