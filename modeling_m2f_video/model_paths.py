"""Where model folders are: `resolve_model_path("demo")` names the small model that ships with the package."""

from __future__ import annotations

import os
from pathlib import Path

DEMO_MODEL_NAME = "demo"
DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo_model"


def resolve_model_path(name_or_path: str | os.PathLike) -> str:
    """The model folder (or Hub id) that `name_or_path` names; "demo" is the shipped demo model.

    Raises a `FileNotFoundError` that says what is missing when "demo" is asked for but the demo model is not
    installed.
    """
    if str(name_or_path) != DEMO_MODEL_NAME:
        return os.fspath(name_or_path)
    if not (DEMO_MODEL_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"The demo model is not installed: {DEMO_MODEL_DIR} has no config.json. It is trained on the project's "
            "synthetic videos by the project's training command; until it is there, pass a model folder with "
            "--model DIR."
        )
    return str(DEMO_MODEL_DIR)
