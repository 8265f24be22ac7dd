#!/usr/bin/env bash
# Builds the C library (the breakerbox-ffi crate) in release mode and installs
# it into a prefix, the way `make install PREFIX=...` documents:
#
#   PREFIX/include/breakerbox.h, breakerbox.hpp
#   LIBDIR/libbreakerbox.a
#   LIBDIR/libbreakerbox.so.X.Y.Z (soname libbreakerbox.so.X), .so.X and .so links
#   LIBDIR/pkgconfig/breakerbox.pc
#   LIBDIR/cmake/breakerbox/breakerbox-config.cmake, -config-version.cmake
#
# Environment: PREFIX (default /usr/local), LIBDIR (default PREFIX/lib),
# DESTDIR (staging root, prepended to every path written), FEATURES (cargo
# features of breakerbox-ffi, e.g. "redis"; redis, redis-tls and
# redis-cluster add -DBREAKERBOX_REDIS, and redis-cluster also
# -DBREAKERBOX_REDIS_CLUSTER, to the compile flags of both the .pc file and
# the CMake targets).
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

PREFIX="${PREFIX:-/usr/local}"
LIBDIR="${LIBDIR:-$PREFIX/lib}"
INCLUDEDIR="$PREFIX/include"
DESTDIR="${DESTDIR:-}"
FEATURES="${FEATURES:-}"

VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' ffi/Cargo.toml | head -1)"
SOVERSION="${VERSION%%.*}"
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"

cargo_args=(build --release -p breakerbox-ffi)
cflags="" defines=""
if [ -n "$FEATURES" ]; then
    cargo_args+=(--features "$FEATURES")
    if [[ ",$FEATURES," =~ ,redis(-tls|-cluster)?, ]]; then
        cflags=" -DBREAKERBOX_REDIS" defines="BREAKERBOX_REDIS"
    fi
    if [[ ",$FEATURES," == *,redis-cluster,* ]]; then
        cflags+=" -DBREAKERBOX_REDIS_CLUSTER" defines+=";BREAKERBOX_REDIS_CLUSTER"
    fi
fi
step "cargo ${cargo_args[*]}" cargo "${cargo_args[@]}"

built="$TARGET_DIR/release"
lib="$DESTDIR$LIBDIR"
install -d "$DESTDIR$INCLUDEDIR" "$lib/pkgconfig" "$lib/cmake/breakerbox"
install -m 644 include/breakerbox.h include/breakerbox.hpp "$DESTDIR$INCLUDEDIR/"
install -m 644 "$built/libbreakerbox_ffi.a" "$lib/libbreakerbox.a"
install -m 755 "$built/libbreakerbox_ffi.so" "$lib/libbreakerbox.so.$VERSION"
ln -sfn "libbreakerbox.so.$VERSION" "$lib/libbreakerbox.so.$SOVERSION"
ln -sfn "libbreakerbox.so.$SOVERSION" "$lib/libbreakerbox.so"

fill() { # TEMPLATE OUTPUT
    sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@LIBDIR@|$LIBDIR|g" -e "s|@INCLUDEDIR@|$INCLUDEDIR|g" \
        -e "s|@VERSION@|$VERSION|g" -e "s|@SOVERSION@|$SOVERSION|g" \
        -e "s|@CFLAGS@|$cflags|g" -e "s|@DEFINES@|$defines|g" "$1" >"$2"
    chmod 644 "$2"
}
fill ffi/pkg/breakerbox.pc.in "$lib/pkgconfig/breakerbox.pc"
fill ffi/pkg/breakerbox-config.cmake.in "$lib/cmake/breakerbox/breakerbox-config.cmake"
fill ffi/pkg/breakerbox-config-version.cmake.in "$lib/cmake/breakerbox/breakerbox-config-version.cmake"
echo "==> installed breakerbox $VERSION (C library) into $DESTDIR$PREFIX"
