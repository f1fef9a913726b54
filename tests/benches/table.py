#!/usr/bin/env python3
"""Prints the runtime benchmark's medians and ratios as a Markdown table.

Run after `cargo bench -p cairn-tests --bench runtime`; reads criterion's
estimates from target/criterion.
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2] / "target" / "criterion"


def median_ns(bench: str) -> float:
    path = ROOT / bench / "new" / "estimates.json"
    try:
        return json.loads(path.read_text())["median"]["point_estimate"]
    except FileNotFoundError:
        sys.exit(f"{path} is missing: run `cargo bench -p cairn-tests --bench runtime` first")


def show(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


call = median_ns("call_fresh-instance_no-deletes")
cold = median_ns("load_no-deletes/cold-compile")
cached = median_ns("load_no-deletes/cached")
loop = median_ns("deadline-overshoot-100ms/loop")
sleep = median_ns("deadline-overshoot-100ms/sleep")

rows = [
    ("fresh store + instantiate + validate + drop (no-deletes, ~1 KiB change)", show(call), "≤ 25 µs"),
    ("load: cold compile", show(cold), ""),
    ("load: from the compile cache", show(cached), ""),
    ("load: cold / cached", f"{cold / cached:.0f}×", "≥ 50×"),
    ("overshoot past a 100 ms deadline: looping plugin", show(loop), "≤ 10 ms"),
    ("overshoot past a 100 ms deadline: plugin sleeping via WASI", show(sleep), "≤ 10 ms"),
]
print("| measurement | median | target |")
print("|---|---|---|")
for name, value, target in rows:
    print(f"| {name} | {value} | {target} |")
