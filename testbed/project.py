"""A throwaway copy of the Pulumi project for end-to-end runs, with its own stack config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
PROGRAM = ("Pulumi.yaml", "__main__.py", "components", "rollout")


def copy_project(dest: Path) -> Path:
    """The program files under `dest`, with `venv` pointing at the repo's venv (Pulumi.yaml names it)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROGRAM:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    (dest / "venv").symlink_to(REPO / "venv")
    return dest


def write_stack_config(project: Path, stack: str, config: dict[str, Any]) -> None:
    """Pulumi.<stack>.yaml with plain (non-secret) values under the project's namespace."""
    values = {f"seldon-rollout:{k}": v for k, v in config.items()}
    (project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": values}, sort_keys=True))


def stack_outputs(stdout: str) -> dict[str, Any]:
    outputs: dict[str, Any] = json.loads(stdout)
    return outputs
