"""`m2f-video export-hub` and `m2f-video push`: make a model folder loadable without the package, and upload it.

m2f-video export-hub MODEL_DIR --output DIR [--repo-id ORG/NAME] [--overwrite]
m2f-video push DIR --repo-id ORG/NAME [--public] [--dry-run] [--token TOKEN] [--commit-message TEXT]
"""

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `export-hub` and `push` subcommands."""
    export = subparsers.add_parser(
        "export-hub",
        help="copy a model folder with its model code, for trust_remote_code loading",
        description=(
            "Copy MODEL_DIR to --output and add flat copies of the model, config, video processor and pipeline "
            "code, with auto_map entries, so that the folder loads with transformers' AutoModel, "
            "AutoVideoProcessor and pipeline(..., trust_remote_code=True) where m2f-video is not installed."
        ),
    )
    export.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="folder written by save_pretrained")
    export.add_argument("--output", required=True, type=Path, help="folder to write")
    export.add_argument("--repo-id", type=_repo_id, help="Hub id ORG/NAME to show in the model card's usage code")
    export.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")
    export.set_defaults(func=run_export)

    push = subparsers.add_parser(
        "push",
        help="upload a model folder to the Hugging Face Hub",
        description=(
            "Create the model repository ORG/NAME (private unless --public; an existing one keeps its visibility) "
            "and upload DIR into it. The token comes from --token, HF_TOKEN or `hf auth login`."
        ),
    )
    push.add_argument("folder", type=Path, metavar="DIR", help="folder to upload (e.g. written by export-hub)")
    push.add_argument("--repo-id", required=True, type=_repo_id, help="Hub repository id ORG/NAME")
    push.add_argument("--public", action="store_true", help="create a public repository (default: private)")
    push.add_argument("--dry-run", action="store_true", help="list what would be uploaded; touch no network")
    push.add_argument("--token", help="Hugging Face token (default: HF_TOKEN or the cached login)")
    push.add_argument("--commit-message", default="Upload Mask2Former video model", help="commit message")
    push.set_defaults(func=run_push)


def _repo_id(value: str) -> str:
    """argparse type: a valid `ORG/NAME` repository id."""
    from modeling_m2f_video.hub import check_repo_id

    try:
        return check_repo_id(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run_export(args: argparse.Namespace) -> int:
    """Write the exported folder and list the remote-code files added."""
    from modeling_m2f_video.hub import HubError, export_hub_folder, remote_code_sources

    try:
        output = export_hub_folder(args.model_dir, args.output, model_id=args.repo_id, overwrite=args.overwrite)
    except HubError as error:
        print(f"export-hub: error: {error}", file=sys.stderr)
        return 1
    print(f"exported to {output}")
    print(f"remote code: {', '.join(sorted(remote_code_sources()))}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    """Print the upload plan; unless `--dry-run`, create the repository and upload."""
    from modeling_m2f_video.hub import HubError, folder_warnings, push_folder, upload_plan

    try:
        plan = upload_plan(args.folder)
    except HubError as error:
        print(f"push: error: {error}", file=sys.stderr)
        return 1
    visibility = "public" if args.public else "private"
    verb = "would upload" if args.dry_run else "uploading"
    print(f"{verb} {len(plan)} files ({_size_text(sum(size for _, size in plan))}) to {args.repo_id} ({visibility}):")
    for path, size in plan:
        print(f"  {path}  {_size_text(size)}")
    for warning in folder_warnings(args.folder):
        print(f"warning: {warning}", file=sys.stderr)
    if args.dry_run:
        return 0
    commit = push_folder(
        args.folder, args.repo_id, private=not args.public, token=args.token, commit_message=args.commit_message
    )
    print(f"uploaded: {commit}")
    return 0


def _size_text(size: int) -> str:
    """A byte count for people: `512 B`, `3.4 KB`, `1.2 GB`."""
    value, unit = float(size), "B"
    for larger_unit in ("KB", "MB", "GB"):
        if round(value, 1) < 1000:
            break
        value, unit = value / 1000, larger_unit
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
