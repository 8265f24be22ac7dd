# Shared helpers for the test suites: install what is missing, time each step.
# Sourced, never run. Every suite installs its own tools so a fresh machine
# needs nothing by hand.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:/usr/local/go/bin:$PATH"

# Runs apt-get update at most once per test run.
apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ] && [ ! -f /tmp/.breakerbox-apt-updated ]; then
        echo "==> apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        touch /tmp/.breakerbox-apt-updated
    fi
    apt_updated=1
    echo "==> apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# need_cmd COMMAND PACKAGE: installs PACKAGE from Debian when COMMAND is missing.
need_cmd() {
    command -v "$1" >/dev/null 2>&1 || apt_install "$2"
}

# need_cargo_bin BINARY CRATE VERSION: installs a pinned cargo tool when missing or different.
need_cargo_bin() {
    local bin="$1" crate="$2" version="$3"
    if ! "$bin" --version 2>/dev/null | grep -q "$version"; then
        echo "==> cargo install $crate@$version"
        cargo install --locked --quiet "$crate" --version "$version"
    fi
}

# step NAME COMMAND...: runs a command and prints how long it took.
step() {
    local name="$1"
    shift
    local start=$SECONDS
    echo "==> $name"
    "$@"
    echo "==> $name: done in $((SECONDS - start)) s"
}
