"""Upload: [`upload_plan`] lists what would be uploaded, [`push_folder`] creates the repository (private by default)
and uploads exactly those files.

Only the model files of the folder are uploaded (the allow list of `model_files`: config, safetensors weights,
processor configs, card, evaluation results, this package's remote-code modules); checkpoints, training logs and
configs, caches and hidden files are left out, and a symbolic link among the model files is refused. The files
go up as one commit of explicitly listed files, so that what `--dry-run` shows is what is uploaded.
"""

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError
from huggingface_hub.utils import validate_repo_id

from .errors import HubError
from .model_files import MODEL_FILES, ModelFiles, check_regular_file, select_model_files
from .remote_code import remote_code_file_names

REPO_ID_PATTERN = re.compile(r"[^/]+/[^/]+")
REPO_TYPES = ("model", "space")


def check_repo_id(repo_id: str) -> str:
    """`repo_id` if it is a valid `ORG/NAME` Hub repository id; `ValueError` otherwise."""
    if not REPO_ID_PATTERN.fullmatch(repo_id):
        raise ValueError(f"repository id must be ORG/NAME, got {repo_id!r}")
    validate_repo_id(repo_id)
    return repo_id


def upload_plan(folder: str | os.PathLike, extra_names: Iterable[str] = ()) -> ModelFiles:
    """The files of `folder` that [`push_folder`] uploads (with their sizes) and the entries it leaves out.

    `extra_names` are further top-level files to let through, e.g. the Space files of `app.space`.

    Raises:
        HubError: `folder` is not a folder, has no model file, or a model file is a symbolic link.
    """
    plan = select_model_files(folder, remote_code_file_names() | set(extra_names))
    if not plan.files:
        raise HubError(f"{plan.folder}: no model files to upload (expected {', '.join(MODEL_FILES)}, ...)")
    return plan


def folder_warnings(folder: str | os.PathLike) -> list[str]:
    """What a model repository made from `folder` would lack (model card, config, complete remote code)."""
    folder = Path(folder)
    uploaded = set(upload_plan(folder).names)
    warnings = []
    if "README.md" not in uploaded:
        warnings.append("no README.md: the repository will have no model card")
    if "config.json" not in uploaded:
        return [*warnings, "no config.json: transformers cannot load this folder"]
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return [*warnings, "config.json is not valid JSON: transformers cannot load this folder"]
    if "auto_map" not in config:
        warnings.append("no auto_map in config.json: it loads only where m2f-video is installed (see export-hub)")
    missing = sorted(name for name in _remote_code_modules(config) if name not in uploaded)
    if missing:
        warnings.append(
            f"config.json names remote code that is not uploaded ({', '.join(missing)}): export the model folder "
            "again with this version's `m2f-video export-hub`"
        )
    return warnings


def _remote_code_modules(config: dict) -> set[str]:
    """The `.py` files named by the `auto_map` and `custom_pipelines` class references of a config."""
    references = list((config.get("auto_map") or {}).values())
    references += [task.get("impl", "") for task in (config.get("custom_pipelines") or {}).values()]
    return {f"{reference.rpartition('.')[0]}.py" for reference in references if isinstance(reference, str)}


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    commit_message: str = "Upload Mask2Former video model",
    extra_names: Iterable[str] = (),
    repo_type: str = "model",
) -> str:
    """Create the repository `repo_id` if needed (private by default) and upload the files of [`upload_plan`] into
    it, as one commit.

    `repo_type` is "model", or "space" for a folder made with `export-hub --space` (a Gradio Space). An existing
    repository keeps its visibility. Returns the URL of the commit.

    Raises:
        HubError: the folder cannot be uploaded (see [`upload_plan`]), or the Hub refused the token or the upload.
    """
    check_repo_id(repo_id)
    if repo_type not in REPO_TYPES:
        raise HubError(f"repo_type: must be one of {', '.join(REPO_TYPES)}, got {repo_type!r}")
    plan = upload_plan(folder, extra_names)
    operations = []
    for name in plan.names:
        path = plan.folder / name
        check_regular_file(path)  # again, right before reading: it may have been replaced by a link
        operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path)))
    api = HfApi(token=token)
    try:
        space_sdk = {"space_sdk": "gradio"} if repo_type == "space" else {}
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **space_sdk)
        commit = api.create_commit(repo_id, operations, commit_message=commit_message, repo_type=repo_type)
    except (HfHubHTTPError, LocalTokenNotFoundError) as error:
        raise HubError(f"{repo_id}: the Hub refused the upload: {str(error).splitlines()[0]}") from None
    return str(commit)
