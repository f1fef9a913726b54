"""Builds a cairn plugin written in Python into a WebAssembly component.

    cairn-py-build PLUGIN_DIR [-o OUT.wasm] [--world validator|fault-injector]
                   [--contract 0.1.0|0.2.0] [--module app] [--no-cache]

(also ``python3 -m cairn_plugin_build``, or ``python3 plugin-sdk/python/build.py``
in a cairn checkout). This package is the host side of the SDK: it ships
the WIT of every contract (``wit/``) and stages the guest package
``cairn_plugin``, installed next to it, into each component.

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

Errors: the SDK turns an uncaught exception in ``validate``/``decide`` into
the plugin's own error result, naming the plugin's file and line
(``KeyError: 'steps' (at app.py line 12, in validate)``).

Reproducible output: componentize-py runs the app once at build time and
snapshots the interpreter's memory. That snapshot holds state seeded from
the build machine's entropy (Python's string hash secret, which componentize-py
does not let a caller fix: the interpreter gets a fixed environment, so
PYTHONHASHSEED does not reach it) and the modification times of the
temporary directories componentize-py creates, so two from-scratch builds of
the same source differ. The build is therefore input-addressed: the component
is kept in a cache under the digest of everything that goes into it (the
staged sources, the WIT, world, contract and module, componentize-py's
version), and a build with the same inputs gives back the same bytes without
running componentize-py again. The cache is $CAIRN_BUILD_CACHE, else
$XDG_CACHE_HOME/cairn/components (~/.cache/cairn/components); it keeps the
most recently used entries (CACHE_KEEP). ``--no-cache`` builds from scratch
(and refreshes the entry). Staged sources get a fixed modification time
($SOURCE_DATE_EPOCH, else 1980-01-01), so a checkout's times never reach the
snapshot.

Needs componentize-py at the version this SDK pins (COMPONENTIZE_PY_VERSION;
``pip install cairn-plugin-sdk`` installs it).
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The guest package staged into every component: installed (or checked
# out) next to this one.
GUEST_PACKAGE = Path(__file__).resolve().parent.parent / "cairn_plugin"
# The WIT of every contract, inside this package (in a checkout, a link to
# the repository's wit/).
WIT_ROOT = Path(__file__).resolve().parent / "wit"
# The componentize-py this SDK builds with; pyproject.toml and
# requirements.txt pin the same version (tests/suite/sdk_packages.rs checks).
COMPONENTIZE_PY_VERSION = "0.25.1"
WORLDS = ("validator", "fault-injector")
# Contract version -> its WIT folder and the worlds it defines.
CONTRACTS = {
    "0.1.0": ("v0.1", ("validator", "fault-injector")),
    "0.2.0": ("v0.2", ("fault-injector",)),
}
# The SDK's frozen modules of older contracts: staged over the current ones
# when building against that contract.
FROZEN = {"0.1.0": GUEST_PACKAGE / "v0_1"}
# What the build does beyond its inputs; bump it when the recipe changes.
RECIPE = "cairn-py-build/2"
# How many components the build cache keeps (most recently used first).
CACHE_KEEP = 24
# Only sources go into the component: build outputs and caches stay out.
SKIPPED = {"target", "__pycache__", "node_modules", ".git", ".venv", "venv"}


def pinned_version() -> str:
    return COMPONENTIZE_PY_VERSION


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
        f"    pip install componentize-py=={COMPONENTIZE_PY_VERSION}"
    )


def check_version(tool: str) -> None:
    wanted = pinned_version()
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
    found = out.stdout.strip().split()[-1] if out.stdout.strip() else "unknown"
    if found != wanted:
        sys.exit(
            f"componentize-py {found} found at {tool}, cairn pins {wanted}; install it with:\n"
            f"    pip install componentize-py=={wanted}"
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
    if not (GUEST_PACKAGE / "__init__.py").is_file():
        sys.exit(f"the SDK's guest package is missing: {GUEST_PACKAGE} (reinstall cairn-plugin-sdk)")
    stage_sources(GUEST_PACKAGE, dest, frozen_dirs)
    frozen = FROZEN.get(contract)
    if frozen is not None:
        for module in frozen.glob("*.py"):
            shutil.copy2(module, dest / module.name)


def fix_times(root: Path) -> None:
    """Gives every staged file and folder one fixed modification time."""
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    paths = sorted(root.rglob("*"), reverse=True) + [root]
    for path in paths:
        os.utime(path, (epoch, epoch))


def hash_tree(digest, root: Path) -> None:
    """Feeds the relative names and contents of every file under root, in a fixed order."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")


def cache_key(staged: Path, wit: Path, world: str, contract: str, module: str, version: str) -> str:
    digest = hashlib.sha256()
    digest.update(f"{RECIPE}\0{world}\0{contract}\0{module}\0componentize-py {version}\0".encode())
    hash_tree(digest, wit)
    digest.update(b"--sources--\0")
    hash_tree(digest, staged)
    return digest.hexdigest()


def cache_dir() -> Path:
    explicit = os.environ.get("CAIRN_BUILD_CACHE")
    if explicit:
        return Path(explicit).resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cairn" / "components"


def prune_cache(cache: Path) -> None:
    """Keeps the CACHE_KEEP most recently used components."""
    entries = []
    for path in cache.glob("*.wasm"):
        try:
            entries.append((path.stat().st_mtime, path))
        except OSError:
            pass
    entries.sort(reverse=True)
    for _, path in entries[CACHE_KEEP:]:
        try:
            path.unlink()
        except OSError:
            pass


def hint_for(app: Path, world: str, contract: str) -> str:
    """A hint for a failed build: a 0.1.0 fault injector built as 0.2.0."""
    if world == "fault-injector" and contract != "0.1.0" and "RequestInfo" in app.read_text():
        return (
            "\nhint: the app uses RequestInfo, a name of contract 0.1.0; if it is a 0.1.0 "
            "fault injector, build it with --contract 0.1.0"
        )
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(prog="cairn-py-build", description=__doc__.split("\n\n")[0])
    parser.add_argument("plugin_dir", type=Path)
    parser.add_argument("-o", "--output", type=Path,
                        help="component to write (default: PLUGIN_DIR/target/NAME.wasm)")
    parser.add_argument("--world", choices=WORLDS, help="default: read from the app module")
    parser.add_argument("--contract", choices=sorted(CONTRACTS),
                        help="contract version to build against "
                             "(default: the newest that defines the world)")
    parser.add_argument("--module", default="app", help="the app module (default: app)")
    parser.add_argument("--no-cache", action="store_true",
                        help="build from scratch even if the build cache holds these inputs")
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
    cache = cache_dir()
    hit = False
    with tempfile.TemporaryDirectory(prefix="cairn-py-build-") as staged:
        stage_sources(src, Path(staged))
        stage_sdk(Path(staged) / "cairn_plugin", contract)
        fix_times(Path(staged))
        key = cache_key(Path(staged), WIT_ROOT / wit_folder, world, contract, args.module,
                        pinned_version())
        cached = cache / f"{key}.wasm"
        hit = not args.no_cache and cached.is_file()
        if not hit:
            cache.mkdir(parents=True, exist_ok=True)
            partial = cache / f"{key}.wasm.{os.getpid()}.partial"
            command = [
                tool, "-d", str(WIT_ROOT / wit_folder), "-w", world, "componentize", args.module,
                "-p", staged, "-o", str(partial),
            ]
            result = subprocess.run(command, check=False, cwd=staged)
            if result.returncode != 0:
                partial.unlink(missing_ok=True)
                sys.exit(
                    f"componentize-py failed ({result.returncode}): {' '.join(command)}"
                    + hint_for(app, world, contract)
                )
            os.replace(partial, cached)
        else:
            os.utime(cached)
    shutil.copyfile(cached, output)
    prune_cache(cache)
    note = ", unchanged: from the build cache" if hit else ""
    print(f"built {output} ({world}, cairn:plugin@{contract}{note})")

