"""Compiler resolution order, caching and errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from chain_node import compiler
from chain_node.compiler import compile_contracts, resolve_solc
from chain_node.errors import CompilerError, CompilerNotFoundError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def no_native_solc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TBCIM_SOLC", raising=False)
    monkeypatch.setattr(compiler.solcx, "get_installed_solc_versions", lambda: [])


def test_npm_solc_adapter_is_the_fallback(no_native_solc: None) -> None:
    solc = resolve_solc()
    assert solc.source == "npm-solc"
    assert solc.version.startswith(compiler.PINNED_VERSION)


def test_explicit_tbcim_solc_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TBCIM_SOLC", str(compiler.ADAPTER))
    solc = resolve_solc()
    assert (solc.source, solc.path) == ("TBCIM_SOLC", compiler.ADAPTER)


def test_bad_tbcim_solc_path_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TBCIM_SOLC", "/nonexistent/solc")
    with pytest.raises(CompilerNotFoundError, match="TBCIM_SOLC=/nonexistent/solc"):
        resolve_solc()


def test_native_solc_installed_by_py_solc_x_is_preferred(
    no_native_solc: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A stand-in native binary: a script that behaves like solc (it forwards to the adapter).
    fake = tmp_path / "solc-v0.8.30"
    fake.write_text(f'#!/bin/sh\nexec "{compiler.ADAPTER}" "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(compiler.solcx, "get_installed_solc_versions", lambda: ["0.8.30"])
    monkeypatch.setattr(compiler.solcx.install, "get_executable", lambda version: fake)
    solc = resolve_solc()
    assert (solc.source, solc.path) == ("py-solc-x", fake)


def test_no_compiler_names_what_to_install(
    no_native_solc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiler.shutil, "which", lambda name: None)
    with pytest.raises(CompilerNotFoundError, match=r"npm ci.*solcx\.install.*TBCIM_SOLC"):
        resolve_solc()


def test_compiles_from_source_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TBCIM_CACHE_DIR", str(tmp_path / "cache"))
    artifacts = compile_contracts(FIXTURES)
    counter = artifacts["Counter"]
    assert {item["name"] for item in counter.abi if item["type"] == "function"} >= {"bump"}
    assert counter.bytecode.startswith("0x60") and len(counter.bytecode) > 100

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(compiler, "_run_compiler", fail)
    assert compile_contracts(FIXTURES)["Counter"] == counter
    assert len(os.listdir(tmp_path / "cache" / "solc")) == 1


def test_compile_error_is_reported_with_solc_message(tmp_path: Path) -> None:
    (tmp_path / "Broken.sol").write_text("pragma solidity ^0.8.30; contract Broken { uint x = ; }")
    with pytest.raises(CompilerError, match="compilation failed"):
        compile_contracts(tmp_path)


def test_empty_contract_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CompilerError, match=r"no \.sol files"):
        compile_contracts(tmp_path)
