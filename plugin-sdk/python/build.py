#!/usr/bin/env python3
"""Builds a cairn plugin written in Python into a WebAssembly component.

    python3 plugin-sdk/python/build.py PLUGIN_DIR [-o OUT.wasm]
                                       [--world validator|fault-injector] [--module app]

PLUGIN_DIR holds the app module (``app.py`` by default) and any modules it
imports. The world is read from the app module (``export_fault_injector``
means ``fault-injector``) unless ``--world`` is given. Needs componentize-py
at the version pinned in requirements.txt:

    pip install -r plugin-sdk/python/requirements.txt
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SDK_DIR = Path(__file__).resolve().parent
WIT_DIR = SDK_DIR.parent.parent / "wit" / "v0.1"
WORLDS = ("validator", "fault-injector")
# Only sources go into the component: build outputs and caches stay out.
SKIPPED = {"target", "__pycache__", "node_modules", ".git", ".venv", "venv"}


def pinned_version() -> str:
    text = (SDK_DIR / "requirements.txt").read_text()
    match = re.search(r"componentize-py==(\S+)", text)
    if match is None:
        sys.exit("plugin-sdk/python/requirements.txt does not pin componentize-py")
    return match.group(1)


def componentize_py() -> str:
    """The componentize-py executable: $COMPONENTIZE_PY, next to this Python, or on PATH."""
    explicit = os.environ.get("COMPONENTIZE_PY")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "componentize-py"
    if beside.is_file():
        return str(beside)
    found = shutil.which("componentize-py")
    if found:
        return found
    sys.exit(
        "componentize-py is not installed; install it with:\n"
        f"    pip install -r {SDK_DIR / 'requirements.txt'}"
    )


def check_version(tool: str) -> None:
    wanted = pinned_version()
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
    found = out.stdout.strip().split()[-1] if out.stdout.strip() else "unknown"
    if found != wanted:
        sys.exit(
            f"componentize-py {found} found at {tool}, cairn pins {wanted}; install it with:\n"
            f"    pip install -r {SDK_DIR / 'requirements.txt'}"
        )


def detect_world(app: Path) -> str:
    return "fault-injector" if "export_fault_injector" in app.read_text() else "validator"


def stage_sources(src: Path, dest: Path) -> None:
    """Copies the plugin's Python sources (no build outputs) into dest."""
    for entry in src.iterdir():
        if entry.name in SKIPPED or entry.name.startswith("."):
            continue
        if entry.is_dir():
            (dest / entry.name).mkdir()
            stage_sources(entry, dest / entry.name)
        elif entry.suffix == ".py":
            shutil.copy2(entry, dest / entry.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plugin_dir", type=Path)
    parser.add_argument("-o", "--output", type=Path,
                        help="component to write (default: PLUGIN_DIR/target/NAME.wasm)")
    parser.add_argument("--world", choices=WORLDS, help="default: read from the app module")
    parser.add_argument("--module", default="app", help="the app module (default: app)")
    args = parser.parse_args()

    src = args.plugin_dir.resolve()
    app = src / f"{args.module}.py"
    if not app.is_file():
        sys.exit(f"{app} does not exist")
    world = args.world or detect_world(app)
    output = args.output or src / "target" / f"{src.name.replace('-', '_')}.wasm"
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)

    tool = componentize_py()
    check_version(tool)
    with tempfile.TemporaryDirectory(prefix="cairn-py-build-") as staged:
        stage_sources(src, Path(staged))
        (Path(staged) / "cairn_plugin").mkdir(exist_ok=True)
        stage_sources(SDK_DIR / "cairn_plugin", Path(staged) / "cairn_plugin")
        command = [
            tool, "-d", str(WIT_DIR), "-w", world, "componentize", args.module,
            "-p", staged, "-o", str(output),
        ]
        result = subprocess.run(command, check=False, cwd=staged)
    if result.returncode != 0:
        sys.exit(f"componentize-py failed ({result.returncode}): {' '.join(command)}")
    print(f"built {output} ({world})")


if __name__ == "__main__":
    main()
