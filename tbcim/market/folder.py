"""A market run's folder: the config used, progress step by step, and resume by checked replay.

``progress.json`` lists every completed step (a phase of a task, or one FL round) with a check
value: the task id, the outcome hash, a round's global-model hash... It is rewritten atomically
after each step, so a killed run leaves a folder that says how far it got.

Resume (``tbcim market run --resume DIR``) reads the config and seed from the folder and runs
the market again from the start on a fresh chain (the embedded chain lives in the process that
was killed). Every step already recorded must give the same check value, or the resume stops
with the step that diverged; the steps after the last recorded one are new. The run is
deterministic in its seed, so a resumed folder is the folder an uninterrupted run writes.

``config.json`` also records the training engine (``{"name": "local" | "flower", "workers": N}``,
issue 13); a folder written before it ran on the local engine. A resume runs on the recorded
engine: the Flower engine's EDs hold their own keys, the local engine's are the node's accounts,
and an ED's address moves g_e by a few gas (its commitments' calldata), so the replay of the
other engine would diverge at the calibration step. Only the number of Ray workers, which
changes no result, may differ; the record then names the workers of the latest start.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tbcim.errors import TbcimError
from tbcim.results import write_json

PROGRESS = "progress.json"
CONFIG = "config.json"
#: The engine record of a folder that has none (written before the Flower engine existed).
LOCAL_ENGINE: dict[str, Any] = {"name": "local", "workers": None}


class ReplayDiverged(TbcimError):
    """A resumed run did not reproduce a step its folder recorded."""


@dataclass
class RunFolder:
    """The run folder at ``path``; ``recorded`` are the steps of an earlier (killed) run."""

    path: Path
    seed: int
    recorded: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    failure: dict[str, Any] | None = None
    engine: dict[str, Any] = field(default_factory=lambda: dict(LOCAL_ENGINE))

    @classmethod
    def create(
        cls,
        path: str | Path,
        config: dict[str, Any],
        seed: int,
        source: str | None,
        engine: dict[str, Any] | None = None,
    ) -> RunFolder:
        """A new folder with the config used (resolved, and the file as given) and the engine
        (default: the local engine)."""
        folder = Path(path)
        if (folder / PROGRESS).exists():
            raise TbcimError(
                f"{folder} holds a run already; continue it with --resume {folder} "
                "or choose another --out"
            )
        folder.mkdir(parents=True, exist_ok=True)
        engine = dict(LOCAL_ENGINE if engine is None else engine)
        write_json(folder / CONFIG, {"seed": seed, "config": config, "engine": engine})
        if source is not None:
            shutil.copyfile(source, folder / ("config" + Path(source).suffix))
        run = cls(folder, seed, engine=engine)
        run.save()
        return run

    @staticmethod
    def saved(path: str | Path) -> dict[str, Any]:
        """``config.json`` of the stopped run in ``path`` (its seed, config and engine), read
        without changing the folder; a TbcimError if there is no run to resume."""
        folder = Path(path)
        if not (folder / PROGRESS).is_file() or not (folder / CONFIG).is_file():
            raise TbcimError(f"--resume: {folder} is not a market run folder (no {PROGRESS})")
        progress = json.loads((folder / PROGRESS).read_text())
        if progress.get("status") == "completed":
            raise TbcimError(f"--resume: the run in {folder} completed already")
        saved: dict[str, Any] = json.loads((folder / CONFIG).read_text())
        saved.setdefault("engine", dict(LOCAL_ENGINE))
        return saved

    @classmethod
    def resume(
        cls, path: str | Path, engine: dict[str, Any] | None = None
    ) -> tuple[RunFolder, dict[str, Any]]:
        """The folder of a stopped run and the config it used; ``engine`` (default: the one
        recorded) is recorded as the engine of this start."""
        folder = Path(path)
        saved = RunFolder.saved(folder)
        progress = json.loads((folder / PROGRESS).read_text())
        run = cls(folder, int(saved["seed"]), recorded=list(progress["steps"]))
        run.engine = dict(saved["engine"] if engine is None else engine)
        if run.engine != saved["engine"]:
            write_json(folder / CONFIG, {**saved, "engine": run.engine})
        run.save()
        return run, saved["config"]

    @property
    def replaying(self) -> bool:
        return len(self.steps) < len(self.recorded)

    def step(self, task: int | None, name: str, check: Any) -> bool:
        """Record a completed step; returns True when it replayed a recorded one."""
        entry = {"task": task, "step": name, "check": check}
        index = len(self.steps)
        replayed = index < len(self.recorded)
        if replayed and self.recorded[index] != entry:
            raise ReplayDiverged(
                f"resume diverged at step {index} ({name}, task {task}): the folder recorded "
                f"{self.recorded[index]}, the replay gave {entry}"
            )
        self.steps.append(entry)
        self.save()
        return replayed

    def fail(self, task: int | None, phase: str, error: str) -> None:
        self.status = "failed"
        self.failure = {"task": task, "phase": phase, "error": error, "steps": len(self.steps)}
        self.save()

    def complete(self) -> None:
        self.status = "completed"
        self.save()

    def save(self) -> None:
        payload = {
            "seed": self.seed,
            "status": self.status,
            "failure": self.failure,
            # a replay that stops early must not forget what the first run recorded
            "steps": self.steps + self.recorded[len(self.steps) :],
            "recorded_before_resume": len(self.recorded),
        }
        tmp = self.path / (PROGRESS + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        os.replace(tmp, self.path / PROGRESS)
