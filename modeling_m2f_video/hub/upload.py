"""Upload: [`upload_plan`] lists what would be uploaded, [`push_folder`] creates the repository (private by default)
and uploads the folder."""

import json
import os
import re
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.utils import filter_repo_objects, validate_repo_id

from .remote_code import HubError

UPLOAD_IGNORE_PATTERNS = ["*__pycache__*", "*.pyc", ".git/*", ".cache/*", ".*"]
REPO_ID_PATTERN = re.compile(r"[^/]+/[^/]+")


def check_repo_id(repo_id: str) -> str:
    """`repo_id` if it is a valid `ORG/NAME` Hub repository id; `ValueError` otherwise."""
    if not REPO_ID_PATTERN.fullmatch(repo_id):
        raise ValueError(f"repository id must be ORG/NAME, got {repo_id!r}")
    validate_repo_id(repo_id)
    return repo_id


def upload_plan(folder: str | os.PathLike) -> list[tuple[str, int]]:
    """(path relative to `folder`, size in bytes) of every file [`push_folder`] uploads, sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HubError(f"{folder} is not a folder.")
    paths = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    selected = list(filter_repo_objects(paths, ignore_patterns=UPLOAD_IGNORE_PATTERNS))
    if not selected:
        raise HubError(f"{folder} has no files to upload.")
    return [(path, (folder / path).stat().st_size) for path in selected]


def folder_warnings(folder: str | os.PathLike) -> list[str]:
    """What a model repository made from `folder` would lack (model card, remote code)."""
    folder = Path(folder)
    warnings = []
    if not (folder / "README.md").is_file():
        warnings.append("no README.md: the repository will have no model card")
    config_path = folder / "config.json"
    if not config_path.is_file():
        warnings.append("no config.json: transformers cannot load this folder")
    elif "auto_map" not in json.loads(config_path.read_text(encoding="utf-8")):
        warnings.append("no auto_map in config.json: it loads only where m2f-video is installed (see export-hub)")
    return warnings


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    commit_message: str = "Upload Mask2Former video model",
) -> str:
    """Create the model repository `repo_id` if needed (private by default) and upload `folder` into it.

    An existing repository keeps its visibility. Returns the URL of the commit.
    """
    check_repo_id(repo_id)
    upload_plan(folder)  # fails early on a missing or empty folder
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        ignore_patterns=UPLOAD_IGNORE_PATTERNS,
        commit_message=commit_message,
    )
    return str(commit)
