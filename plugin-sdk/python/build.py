#!/usr/bin/env python3
"""Builds a cairn plugin written in Python into a WebAssembly component.

    python3 plugin-sdk/python/build.py PLUGIN_DIR [-o OUT.wasm]
                                       [--world validator|fault-injector]
                                       [--contract 0.1.0|0.2.0] [--module app]

PLUGIN_DIR holds the app module (``app.py`` by default) and any modules it
imports. The world is read from the app module (``export_fault_injector``
means ``fault-injector``) unless ``--world`` is given.

The contract version defaults to the newest that defines the world:
validators are built against ``cairn:plugin@0.1.0`` (``wit/v0.1``; 0.2.0 has
no validator world), fault injectors against ``cairn:plugin@0.2.0``
(``wit/v0.2``). ``--contract 0.1.0`` builds a fault injector written for
0.1.0 (``none()``, ``delay()``, ``error_response()``, ...) unchanged: the
SDK's frozen 0.1.0 module (``cairn_plugin/v0_1/fault_injector.py``) is then
``cairn_plugin.fault_injector``.

Needs componentize-py at the version pinned in requirements.txt:

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
WIT_ROOT = SDK_DIR.parent.parent / "wit"
WORLDS = ("validator", "fault-injector")
# Contract version -> its WIT folder and the worlds it defines.
CONTRACTS = {
    "0.1.0": ("v0.1", ("validator", "fault-injector")),
    "0.2.0": ("v0.2", ("fault-injector",)),
}
# The SDK's frozen modules of older contracts: staged over the current ones
# when building against that contract.
FROZEN = {"0.1.0": SDK_DIR / "cairn_plugin" / "v0_1"}
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


def latest_contract(world: str) -> str:
    """The newest contract version that defines ``world``."""
    return max(
        (version for version, (_, worlds) in CONTRACTS.items() if world in worlds),
        key=lambda version: tuple(int(part) for part in version.split(".")),
    )


def stage_sources(src: Path, dest: Path, skipped: frozenset = frozenset()) -> None:
    """Copies the Python sources under src (no build outputs, nothing named
    in ``skipped``) into dest."""
    for entry in src.iterdir():
        if entry.name in SKIPPED or entry.name in skipped or entry.name.startswith("."):
            continue
        if entry.is_dir():
            (dest / entry.name).mkdir()
            stage_sources(entry, dest / entry.name)
        elif entry.suffix == ".py":
            shutil.copy2(entry, dest / entry.name)


def stage_sdk(dest: Path, contract: str) -> None:
    """Copies the SDK package into dest, with the frozen modules of
    ``contract`` in place of the current ones."""
    frozen_dirs = frozenset(path.name for path in FROZEN.values())
    dest.mkdir(exist_ok=True)
    stage_sources(SDK_DIR / "cairn_plugin", dest, frozen_dirs)
    frozen = FROZEN.get(contract)
    if frozen is not None:
        for module in frozen.glob("*.py"):
            shutil.copy2(module, dest / module.name)


def hint_for(app: Path, world: str, contract: str) -> str:
    """A hint for a failed build: a 0.1.0 fault injector built as 0.2.0."""
    if world == "fault-injector" and contract != "0.1.0" and "RequestInfo" in app.read_text():
        return (
            "\nhint: the app uses RequestInfo, a name of contract 0.1.0; if it is a 0.1.0 "
            "fault injector, build it with --contract 0.1.0"
        )
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plugin_dir", type=Path)
    parser.add_argument("-o", "--output", type=Path,
                        help="component to write (default: PLUGIN_DIR/target/NAME.wasm)")
    parser.add_argument("--world", choices=WORLDS, help="default: read from the app module")
    parser.add_argument("--contract", choices=sorted(CONTRACTS),
                        help="contract version to build against "
                             "(default: the newest that defines the world)")
    parser.add_argument("--module", default="app", help="the app module (default: app)")
    args = parser.parse_args()

    src = args.plugin_dir.resolve()
    app = src / f"{args.module}.py"
    if not app.is_file():
        sys.exit(f"{app} does not exist")
    world = args.world or detect_world(app)
    contract = args.contract or latest_contract(world)
    wit_folder, worlds = CONTRACTS[contract]
    if world not in worlds:
        sys.exit(
            f"contract {contract} has no {world} world; a {world} is built against "
            f"{latest_contract(world)} (drop --contract, or pass --contract {latest_contract(world)})"
        )
    output = args.output or src / "target" / f"{src.name.replace('-', '_')}.wasm"
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)

    tool = componentize_py()
    check_version(tool)
    with tempfile.TemporaryDirectory(prefix="cairn-py-build-") as staged:
        stage_sources(src, Path(staged))
        stage_sdk(Path(staged) / "cairn_plugin", contract)
        command = [
            tool, "-d", str(WIT_ROOT / wit_folder), "-w", world, "componentize", args.module,
            "-p", staged, "-o", str(output),
        ]
        result = subprocess.run(command, check=False, cwd=staged)
    if result.returncode != 0:
        sys.exit(
            f"componentize-py failed ({result.returncode}): {' '.join(command)}"
            + hint_for(app, world, contract)
        )
    print(f"built {output} ({world}, cairn:plugin@{contract})")


if __name__ == "__main__":
    main()
