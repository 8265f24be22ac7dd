#!/usr/bin/env bash
# Benchmarks the Python package against pybreaker 1.4.1 and
# nodus-circuit-breaker 0.1.0, installed beside it in one virtual environment
# (target/python-bench-venv), in one process and one run. Not a test: it
# prints a Markdown table for BENCHMARKS.md.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
need_cmd python3 python3
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
venv="$ROOT/target/python-bench-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"
"$py" -c 'import pybreaker, nodus_circuit_breaker' 2>/dev/null ||
    "$py" -m pip install -q pybreaker==1.4.1 nodus-circuit-breaker==0.1.0
"$py" -m pip install -q --force-reinstall --no-deps ./bindings/python
cd "$(mktemp -d)"
"$py" "$ROOT/bindings/python/bench/bench.py"
