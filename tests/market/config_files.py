"""A market config (a dict of tables) written as the TOML file the CLI reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_toml(path: Path, raw: dict[str, Any]) -> Path:
    def literal(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return '"' + value + '"'
        if isinstance(value, list | tuple):
            return "[" + ", ".join(literal(v) for v in value) + "]"
        return repr(value)

    lines = []
    for table, values in raw.items():
        lines.append(f"[{table}]")
        lines += [f"{k} = {literal(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
