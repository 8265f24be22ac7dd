#!/usr/bin/env bash
# The C library (the breakerbox-ffi crate), installed into a temporary prefix
# with `make install` and used from there: C (plain, AddressSanitizer/UBSan,
# valgrind), the README's C example through pkg-config, a CMake project
# (find_package and pkg_check_modules), a program built against the 0.1
# header, C++ (the RAII wrapper), the Go module in bindings/go, and Python
# (ctypes). First it checks that the Rust crate `breakerbox` exports no C
# symbol. Installs the toolchains it needs when missing; exits non-zero on
# any failure.
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"
trap 'rc=$?; if [ "$rc" -ne 0 ]; then echo "==> ffi: FAIL (exit $rc)" >&2; fi' EXIT

need_cmd cc gcc
need_cmd c++ g++
need_cmd valgrind valgrind
need_cmd go golang-go
need_cmd python3 python3
need_cmd pkg-config pkg-config
need_cmd cmake cmake
need_cmd nm binutils

BUILD="$ROOT/ffi-tests/build"
PREFIX="$BUILD/prefix"  # what `make install PREFIX=...` writes
STATIC="$BUILD/static"  # only libbreakerbox.a: -lbreakerbox links it statically
rm -rf "$PREFIX" "$STATIC" "$BUILD/cmake"
mkdir -p "$STATIC"

passed=()

# --- breakerbox itself is pure Rust -----------------------------------------
# A cdylib depending on breakerbox, built in a target directory of its own:
# it must export no cb_ symbol, and breakerbox must yield no .a or .so.
pure_rust() {
    local dir="$BUILD/pure-rust"
    rm -rf "$dir"
    mkdir -p "$dir/src"
    cat >"$dir/Cargo.toml" <<TOML
[package]
name = "uses-breakerbox"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
breakerbox = { path = "$ROOT" }

[workspace]
TOML
    cat >"$dir/src/lib.rs" <<'RS'
#[no_mangle]
pub extern "C" fn uses_breakerbox_state() -> u32 {
    breakerbox::CircuitBreaker::default().state() as u32
}
RS
    cp Cargo.lock "$dir/"
    (cd "$dir" && cargo build --quiet --release --offline 2>/dev/null || cargo build --quiet --release)
    local so="$dir/target/release/libuses_breakerbox.so" exported
    exported="$(nm -D --defined-only "$so")"
    if ! grep -q uses_breakerbox_state <<<"$exported"; then
        echo "pure Rust: FAIL (the test cdylib exports nothing; the check would prove nothing)" >&2
        return 1
    fi
    if grep -E ' cb_' <<<"$exported"; then
        echo "pure Rust: FAIL (a cdylib depending on breakerbox exports the cb_ symbols above)" >&2
        return 1
    fi
    local artifacts
    artifacts="$(find "$dir/target" \( -name 'libbreakerbox*.a' -o -name 'libbreakerbox*.so' \) -print)"
    if [ -n "$artifacts" ]; then
        echo "pure Rust: FAIL (building breakerbox as a dependency produced C libraries:" $artifacts ")" >&2
        return 1
    fi
    echo "pure Rust: PASS (no cb_ symbol among $(wc -l <<<"$exported") exported; no libbreakerbox .a/.so built)"
}
step "breakerbox exports no C symbol" pure_rust
passed+=(pure-rust)

# --- the crate's own tests -----------------------------------------------------
step "cargo test -p breakerbox-ffi (all features)" cargo test -p breakerbox-ffi --all-features
step "cargo doc -p breakerbox-ffi (-D warnings)" env RUSTDOCFLAGS="-D warnings" \
    cargo doc --quiet -p breakerbox-ffi --no-deps --all-features
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "==> rustup component add miri rust-src --toolchain nightly"
    rustup component add miri rust-src --toolchain nightly
fi
# The handle given to callbacks must carry provenance over the whole handle.
step "miri (breakerbox-ffi unit tests)" cargo +nightly miri test -p breakerbox-ffi --lib
passed+=(crate)

# --- install ------------------------------------------------------------------
step "make install PREFIX=$PREFIX" make -s install PREFIX="$PREFIX"
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
soname="$(readelf -d "$PREFIX/lib/libbreakerbox.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
if [ "$soname" != "libbreakerbox.so.0" ]; then
    echo "install: FAIL (the shared library's soname is '$soname', not libbreakerbox.so.0)" >&2
    exit 1
fi
cp "$PREFIX/lib/libbreakerbox.a" "$STATIC/"

# A staged install (DESTDIR, LIBDIR) for packagers: files land under the
# stage, and what they say names the final paths.
staged_install() {
    local stage="$BUILD/stage"
    rm -rf "$stage"
    make -s install PREFIX=/opt/breakerbox LIBDIR=/opt/breakerbox/lib64 DESTDIR="$stage" >/dev/null
    local f
    for f in include/breakerbox.h include/breakerbox.hpp lib64/libbreakerbox.a lib64/libbreakerbox.so \
        lib64/libbreakerbox.so.0 lib64/pkgconfig/breakerbox.pc lib64/cmake/breakerbox/breakerbox-config.cmake; do
        [ -e "$stage/opt/breakerbox/$f" ] || { echo "staged install: FAIL (no $f)" >&2; return 1; }
    done
    grep -qx 'libdir=/opt/breakerbox/lib64' "$stage/opt/breakerbox/lib64/pkgconfig/breakerbox.pc"
    if grep -rq "$stage" "$stage/opt/breakerbox/lib64/pkgconfig" "$stage/opt/breakerbox/lib64/cmake"; then
        echo "staged install: FAIL (the stage's path leaked into the installed files)" >&2
        return 1
    fi
    echo "staged install: PASS"
}
step "make install DESTDIR=... LIBDIR=..." staged_install
passed+=(install)

WARN=(-Wall -Wextra -Wpedantic -Werror)
LINK=(-L"$STATIC" -lbreakerbox -lpthread -ldl -lm)
# Programs linked to the shared library find it in the prefix.
export LD_LIBRARY_PATH="$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# --- C ----------------------------------------------------------------------
# test_breaker.c: behaviour, bad input, callbacks, threads; test_policy.c:
# rate windows, slow calls, backoff, modes, retry-after, on a manual clock.
C_TESTS=(test_breaker test_policy)
c_build() { # SOURCE OUTPUT EXTRA_FLAGS...
    local src="$1" out="$2"
    shift 2
    cc -std=c11 "${WARN[@]}" -g -O1 "$@" -Iinclude -Iffi-tests/c "ffi-tests/c/$src.c" "${LINK[@]}" -o "$out"
}

for t in "${C_TESTS[@]}"; do
    step "C: build $t" c_build "$t" "$BUILD/$t"
    step "C: run $t" "$BUILD/$t"
done
passed+=(c)

for t in "${C_TESTS[@]}"; do
    step "C: build $t with ASan/UBSan" c_build "$t" "$BUILD/${t}_asan" \
        -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
    step "C: run $t under ASan/UBSan" env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$BUILD/${t}_asan"
done
passed+=(c-asan-ubsan)

valgrind_run() { # PROGRAM
    local log="$BUILD/valgrind-$1.log"
    if ! valgrind --quiet --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all \
        --suppressions=ffi-tests/valgrind.supp --error-exitcode=1 --log-file="$log" "$BUILD/$1"; then
        cat "$log"
        echo "C under valgrind: FAIL ($1)" >&2
        return 1
    fi
    if [ -s "$log" ]; then # --quiet: anything logged is an error or a leak
        cat "$log"
        echo "C under valgrind: FAIL ($1; see the report above)" >&2
        return 1
    fi
    echo "C under valgrind: PASS ($1: 0 errors, 0 bytes leaked; still reachable: only the interned names, see ffi-tests/valgrind.supp)"
}
for t in "${C_TESTS[@]}"; do
    step "C: run $t under valgrind" valgrind_run "$t"
done
passed+=(c-valgrind)

# --- the README's C example, exactly as written, built through pkg-config ----
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
    # shellcheck disable=SC2046 # the flags are words
    if ! cc -std=c11 "${WARN[@]}" "$src" $(pkg-config --cflags --libs breakerbox) -o "$BUILD/readme_example"; then
        echo "README example: FAIL (does not compile as written with pkg-config's flags)" >&2
        return 1
    fi
    if ! readelf -d "$BUILD/readme_example" | grep -q 'NEEDED.*\[libbreakerbox.so.0\]'; then
        echo "README example: FAIL (not linked against libbreakerbox.so.0)" >&2
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
    echo "README example: PASS ($(wc -l <"$src") lines compiled with pkg-config, run against libbreakerbox.so.0)"
}
step "README C example (pkg-config)" readme_example
passed+=(readme-example)

# --- a CMake project: find_package(breakerbox) and pkg_check_modules ---------
cmake_project() {
    cmake -S ffi-tests/cmake -B "$BUILD/cmake" -DCMAKE_PREFIX_PATH="$PREFIX" \
        -DCMAKE_CXX_FLAGS="${WARN[*]}" >/dev/null
    cmake --build "$BUILD/cmake" >/dev/null
    local exe
    for exe in with_find_package with_find_package_static with_pkg_config; do
        echo "$exe: $("$BUILD/cmake/$exe")"
    done
}
step "CMake: find_package and pkg_check_modules" cmake_project
passed+=(cmake)

# --- a program built against the 0.1 header, run against this library -------
abi_0_1() {
    cc -std=c11 "${WARN[@]}" -g -Iffi-tests/abi-0.1 ffi-tests/abi-0.1/test_abi_0_1.c \
        -L"$PREFIX/lib" -lbreakerbox -o "$BUILD/test_abi_0_1"
    "$BUILD/test_abi_0_1"
}
step "C: the 0.1 ABI" abi_0_1
passed+=(abi-0.1)

# --- C++ ----------------------------------------------------------------------
step "C++: build" c++ -std=c++17 "${WARN[@]}" -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
    -Iinclude ffi-tests/cpp/test_wrapper.cpp "${LINK[@]}" -pthread -o "$BUILD/test_cpp"
step "C++: run (ASan/UBSan)" env ASAN_OPTIONS=detect_leaks=1 "$BUILD/test_cpp"
passed+=(cpp)

# --- Go -----------------------------------------------------------------------
go_test() {
    cd "$ROOT/bindings/go"
    local rc=0
    env GOFLAGS=-mod=mod GOCACHE="$BUILD/go-cache" GOPATH="$BUILD/go-path" CGO_ENABLED=1 \
        go test -race -count=1 -v ./... 2>&1 | tee "$BUILD/go-test.log" || rc=$?
    cd "$ROOT"
    if [ "$rc" -ne 0 ]; then
        echo "Go tests: FAIL" >&2
        return 1
    fi
    echo "Go tests: PASS ($(grep -c '^--- PASS' "$BUILD/go-test.log") tests, against the library in $PREFIX)"
}

# A program in a module of its own requires the Go module, as a user's would.
go_consumer() {
    local dir="$BUILD/go-consumer"
    rm -rf "$dir"
    mkdir -p "$dir"
    cat >"$dir/go.mod" <<MOD
module consumer

go 1.19

require breakerbox/bindings/go v0.0.0

replace breakerbox/bindings/go => $ROOT/bindings/go
MOD
    cat >"$dir/main.go" <<'GO'
package main

import (
	"errors"
	"fmt"

	breakerbox "breakerbox/bindings/go"
)

func main() {
	b, err := breakerbox.New(breakerbox.WithName("db"), breakerbox.WithFailMax(2))
	if err != nil {
		panic(err)
	}
	defer b.Close()
	for i := 0; i < 3; i++ {
		_ = b.Do(func() error { return errors.New("down") })
	}
	fmt.Println("breaker is", b.State())
}
GO
    local output
    output="$(cd "$dir" && env GOFLAGS=-mod=mod GOCACHE="$BUILD/go-cache" GOPATH="$BUILD/go-path" \
        CGO_ENABLED=1 go run .)"
    echo "$output"
    [ "$output" = "breaker is open" ]
}
step "Go: bindings/go, go test -race" go_test
step "Go: a module requiring bindings/go" go_consumer
passed+=(go)

# --- Python -------------------------------------------------------------------
step "Python: ctypes" env BREAKERBOX_LIB="$PREFIX/lib/libbreakerbox.so.0" \
    python3 ffi-tests/python/test_breakerbox.py
passed+=(python)

echo "==> ffi: PASS (${passed[*]})"
