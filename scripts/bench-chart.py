#!/usr/bin/env python3
"""Turn criterion's results into the BENCHMARKS.md tables and a PNG chart.

    python3 scripts/bench-chart.py [--criterion DIR] [--png PATH]

Reads the median of every `<group>/<function>/new/estimates.json` under the
criterion directory (default: $CARGO_TARGET_DIR/criterion, else
target/criterion), prints markdown tables of ns/call with ratios to the best
peer, and draws breakerbox against the peers (default: benches/chart.png).
matplotlib is installed with pip when missing.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The peers a bar is judged against, and the naive reference shown beside them.
PEERS = ["failsafe_default", "failsafe_consecutive", "recloser"]
BREAKERS = ["breakerbox"] + PEERS + ["mutex"]
LABELS = {
    "breakerbox": "breakerbox",
    "failsafe_default": "failsafe (default policy)",
    "failsafe_consecutive": "failsafe (consecutive failures)",
    "recloser": "recloser",
    "mutex": "naive Mutex breaker",
}

CASES = [
    ("closed_success", "closed success (acquire + record)"),
    ("closed_failure", "closed failure, not tripping"),
    ("open_rejection", "open rejection"),
    ("half_open_rejection", "half-open rejection, probe in flight"),
    ("trip_recovery", "trip and recovery cycle"),
    ("closed_success_1_thread", "closed success, 1 thread (wall ns/call)"),
    ("closed_success_2_threads", "closed success, 2 threads (wall ns/call)"),
]


def criterion_dir(arg):
    if arg:
        return Path(arg)
    target = os.environ.get("CARGO_TARGET_DIR")
    return Path(target) / "criterion" if target else ROOT / "target" / "criterion"


def load(base):
    """{group: {function: median ns}} for every estimate criterion left."""
    results = {}
    for path in sorted(base.glob("*/*/new/estimates.json")):
        function = path.parent.parent.name
        group = path.parent.parent.parent.name
        with open(path) as f:
            estimates = json.load(f)
        results.setdefault(group, {})[function] = estimates["median"]["point_estimate"]
    extra = sorted(base.glob("*/*/*/new/estimates.json"))
    if extra:
        sys.exit(f"unexpected nesting under {base}: {extra[0]}")
    return results


def ns(value):
    if value is None:
        return "—"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "—"


def main_table(results):
    lines = [
        "| case | " + " | ".join(LABELS[b] for b in BREAKERS) + " | best peer | breakerbox / best peer | breakerbox / Mutex |",
        "|---" * (len(BREAKERS) + 4) + "|",
    ]
    for group, title in CASES:
        row = results.get(group, {})
        peers = {p: row[p] for p in PEERS if p in row}
        best = min(peers, key=peers.get) if peers else None
        bb = row.get("breakerbox")
        cells = [ns(row.get(b)) for b in BREAKERS]
        lines.append(
            f"| {title} | "
            + " | ".join(cells)
            + f" | {LABELS[best] if best else '—'} | {ratio(bb, peers.get(best))} | {ratio(bb, row.get('mutex'))} |"
        )
    one = results.get("closed_success_1_thread", {})
    two = results.get("closed_success_2_threads", {})
    scaling = [ratio(two.get(b), one.get(b)) for b in BREAKERS]
    lines.append("| **scaling**: 2 threads / 1 thread | " + " | ".join(scaling) + " | | | |")
    if "breakerbox_unshared" in one and "breakerbox_unshared" in two:
        ceiling = ratio(two["breakerbox_unshared"], one["breakerbox_unshared"])
        lines.append(
            f"| machine's ceiling: one breaker per thread, nothing shared ({ns(one['breakerbox_unshared'])} → "
            f"{ns(two['breakerbox_unshared'])} ns) | {ceiling} | | | | | | | |"
        )
    for group in sorted(results):
        if group.startswith("closed_success_") and group.endswith("_threads") and group != "closed_success_2_threads":
            row = results[group]
            n = group[len("closed_success_") : -len("_threads")]
            lines.append(f"| closed success, {n} threads | " + " | ".join(ns(row.get(b)) for b in BREAKERS) + " | | | |")
    return "\n".join(lines)


def flat_table(results, group, title):
    row = results.get(group)
    if not row:
        return f"(no results for {group})"
    lines = [f"| {title} | ns/call |", "|---|---|"]
    lines += [f"| {name} | {ns(value)} |" for name, value in sorted(row.items(), key=lambda kv: kv[1])]
    return "\n".join(lines)


def bars(results):
    """(title, {breaker: ns}) for every case with a breakerbox figure."""
    out = []
    for group, title in CASES:
        row = results.get(group, {})
        if "breakerbox" in row:
            out.append((title, {b: row[b] for b in BREAKERS if b in row}))
    ffi = results.get("ffi_acquire_record", {})
    if "breakerbox_c_abi" in ffi:
        out.append(("C ABI acquire + record (breakerbox only)", {"breakerbox": ffi["breakerbox_c_abi"]}))
    return out


def chart(results, png):
    try:
        import matplotlib
    except ImportError:
        print("==> pip install matplotlib", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"], check=True)
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = bars(results)
    if not rows:
        sys.exit("no breakerbox results to chart: run `cargo bench -p breakerbox-benches` first")
    colors = {
        "breakerbox": "#1b7837",
        "failsafe_default": "#c2a5cf",
        "failsafe_consecutive": "#762a83",
        "recloser": "#e08214",
        "mutex": "#878787",
    }
    height = 0.16
    fig, ax = plt.subplots(figsize=(10, 0.9 * len(rows) + 1.5))
    for i, (_, row) in enumerate(rows):
        present = [b for b in BREAKERS if b in row]
        for j, b in enumerate(present):
            y = i + (j - (len(present) - 1) / 2) * height
            ax.barh(y, row[b], height=height, color=colors[b])
            ax.text(row[b] * 1.05, y, ns(row[b]), va="center", fontsize=7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([title for title, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median ns per call (log scale, lower is better)")
    ax.set_title("breakerbox against its peers, one criterion run")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[b]) for b in BREAKERS]
    ax.legend(handles, [LABELS[b] for b in BREAKERS], fontsize=8, loc="lower right")
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"chart written to {png}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--criterion", help="criterion's output directory")
    parser.add_argument("--png", default=str(ROOT / "benches" / "chart.png"), help="where to write the chart")
    parser.add_argument("--no-chart", action="store_true", help="print the tables only")
    args = parser.parse_args()

    base = criterion_dir(args.criterion)
    if not base.is_dir():
        sys.exit(f"no criterion results in {base}: run `cargo bench -p breakerbox-benches` first")
    results = load(base)

    print(main_table(results))
    print()
    print(flat_table(results, "call_wrapper", "closed success through"))
    print()
    print(flat_table(results, "ffi_acquire_record", "acquire + record success"))
    print()
    print(flat_table(results, "ffi_open_rejection", "open rejection through"))
    print()
    print(flat_table(results, "reference", "reference"))
    if not args.no_chart:
        chart(results, Path(args.png))


if __name__ == "__main__":
    main()
