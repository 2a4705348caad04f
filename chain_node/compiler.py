"""Compile ``contracts/*.sol`` from source with py-solc-x's ``compile_standard``.

Compiler resolution, first match wins:

1. ``TBCIM_SOLC``: an explicit path to a solc binary.
2. A native solc that py-solc-x has installed (the pinned version if present, else the newest).
3. The pinned npm ``solc`` package, through ``solcjs_adapter.js``, which answers ``--version`` and
   ``--standard-json`` the way native solc does (the npm CLI prints a banner before its JSON).

Artifacts are cached on disk, keyed by the sources' hash, the compiler version and the settings,
so a second compile of unchanged sources costs a file read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import solcx
from solcx.exceptions import SolcError
from solcx.wrapper import get_version_str_from_solc_binary

from chain_node.errors import CompilerError, CompilerNotFoundError

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTRACTS_DIR = REPO_ROOT / "contracts"
ADAPTER = Path(__file__).resolve().parent / "solcjs_adapter.js"
PINNED_VERSION = "0.8.30"
SETTINGS_FILE = "compiler-settings.json"
DEFAULT_SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "prague",
}
OUTPUT_SELECTION = {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}}


@dataclass(frozen=True)
class SolcBinary:
    """A resolved compiler: the executable py-solc-x runs, how it was found, its version."""

    path: Path
    source: str  # "TBCIM_SOLC", "py-solc-x" or "npm-solc"
    version: str


@dataclass(frozen=True)
class ContractArtifact:
    """One compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler_version: str


def _cache_dir() -> Path:
    return Path(os.environ.get("TBCIM_CACHE_DIR", REPO_ROOT / ".tbcim-cache")) / "solc"


def _npm_solc_available() -> bool:
    if shutil.which("node") is None:
        return False
    if os.environ.get("TBCIM_SOLCJS_MODULE"):
        return True
    return any((root / "node_modules" / "solc").is_dir() for root in (Path.cwd(), REPO_ROOT))


def resolve_solc() -> SolcBinary:
    """Find a Solidity compiler in the documented order, or raise CompilerNotFoundError."""
    explicit = os.environ.get("TBCIM_SOLC")
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise CompilerNotFoundError(f"TBCIM_SOLC={explicit} is not an executable file")
        return SolcBinary(path, "TBCIM_SOLC", get_version_str_from_solc_binary(path))

    installed = solcx.get_installed_solc_versions()
    if installed:
        pinned = [v for v in installed if str(v) == PINNED_VERSION]
        version = pinned[0] if pinned else max(installed)
        path = Path(solcx.install.get_executable(version))
        return SolcBinary(path, "py-solc-x", get_version_str_from_solc_binary(path))

    if _npm_solc_available():
        return SolcBinary(ADAPTER, "npm-solc", get_version_str_from_solc_binary(ADAPTER))

    raise CompilerNotFoundError(
        "no Solidity compiler found. Install one of: the pinned npm solc (`npm ci` in the "
        "repository root, needs node), a native solc via "
        f"`python -m solcx.install {PINNED_VERSION}`, or point TBCIM_SOLC at a solc binary."
    )


def _load_settings(contracts_dir: Path) -> dict[str, Any]:
    settings_path = contracts_dir / SETTINGS_FILE
    settings = dict(DEFAULT_SETTINGS)
    if settings_path.exists():
        settings.update(json.loads(settings_path.read_text()))
    settings["outputSelection"] = OUTPUT_SELECTION
    return settings


def _standard_input(contracts_dir: Path) -> dict[str, Any]:
    sources = {
        path.name: {"content": path.read_text()} for path in sorted(contracts_dir.glob("*.sol"))
    }
    if not sources:
        raise CompilerError(f"no .sol files in {contracts_dir}")
    return {"language": "Solidity", "sources": sources, "settings": _load_settings(contracts_dir)}


def _cache_key(standard_input: dict[str, Any], version: str) -> str:
    blob = json.dumps({"input": standard_input, "version": version}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _run_compiler(standard_input: dict[str, Any], solc: SolcBinary, base: Path) -> dict[str, Any]:
    try:
        output = solcx.compile_standard(
            standard_input, solc_binary=solc.path, base_path=str(base), allow_paths=str(base)
        )
    except SolcError as err:
        try:
            output = json.loads(err.stdout_data or "")
        except (TypeError, ValueError):
            raise CompilerError(f"solc ({solc.source} {solc.version}) failed: {err}") from err
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        messages = "\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors)
        raise CompilerError(f"compilation failed ({solc.source} {solc.version}):\n{messages}")
    return output


def compile_contracts(contracts_dir: str | Path | None = None) -> dict[str, ContractArtifact]:
    """Compile every ``*.sol`` in ``contracts_dir`` (default ``contracts/``); cached on disk."""
    directory = Path(contracts_dir) if contracts_dir else CONTRACTS_DIR
    standard_input = _standard_input(directory)
    solc = resolve_solc()
    cache_file = _cache_dir() / f"{_cache_key(standard_input, solc.version)}.json"
    if cache_file.exists():
        output = json.loads(cache_file.read_text())
    else:
        output = _run_compiler(standard_input, solc, directory)
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")  # test workers compile at once
        tmp.write_text(json.dumps(output))
        tmp.replace(cache_file)
    artifacts: dict[str, ContractArtifact] = {}
    for per_file in output.get("contracts", {}).values():
        for name, data in per_file.items():
            artifacts[name] = ContractArtifact(
                name=name,
                abi=data["abi"],
                bytecode="0x" + data["evm"]["bytecode"]["object"],
                deployed_bytecode="0x" + data["evm"]["deployedBytecode"]["object"],
                compiler_version=solc.version,
            )
    return artifacts
