"""`m2f-video export-hub` and `m2f-video push`: make a model folder loadable without the package, and upload it.

m2f-video export-hub MODEL_DIR --output DIR [--repo-id ORG/NAME] [--space] [--overwrite] [--dry-run]
m2f-video push DIR --repo-id ORG/NAME [--space] [--public] [--dry-run] [--token TOKEN] [--commit-message TEXT]

Both publish only the model files of a folder (config, safetensors weights, processor configs, model card,
eval.json, remote code) and list them with their sizes; `--dry-run` lists them and writes or uploads nothing.
Bad input (a folder that cannot be exported or uploaded) is a `HubError`, which the CLI prints as one line,
`error: <folder>: <problem>`, with exit status 2.
"""

import argparse
import sys
from pathlib import Path

ALLOW_LIST_NOTE = (
    "Only the model files are published: config.json, model.safetensors (or its shards and index), the video and "
    "image processor configs, README.md, eval.json and the remote-code modules. Checkpoints, training logs and "
    "configs are left out, and a symbolic link among the model files is refused."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `export-hub` and `push` subcommands."""
    export = subparsers.add_parser(
        "export-hub",
        help="copy a model folder with its model code, for trust_remote_code loading",
        description=(
            "Copy the model files of MODEL_DIR to --output and add flat copies of the model, config, video "
            "processor and pipeline code, with auto_map entries, so that the folder loads with transformers' "
            "AutoModel, AutoVideoProcessor and pipeline(..., trust_remote_code=True) where m2f-video is not "
            f"installed. {ALLOW_LIST_NOTE}"
        ),
    )
    export.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="folder written by save_pretrained")
    export.add_argument("--output", required=True, type=Path, help="folder to write")
    export.add_argument("--repo-id", type=_repo_id, help="Hub id ORG/NAME to show in the model card's usage code")
    export.add_argument(
        "--space",
        action="store_true",
        help="also write the files of a Hugging Face Space running the web app on the model (app.py, "
        "requirements.txt, the app's code, an example video, the Space settings in the card)",
    )
    export.add_argument("--overwrite", action="store_true", help="replace an existing non-empty exported folder")
    export.add_argument("--dry-run", action="store_true", help="list the files that would be written; write none")
    export.set_defaults(func=run_export)

    push = subparsers.add_parser(
        "push",
        help="upload a model folder to the Hugging Face Hub",
        description=(
            "Create the model repository ORG/NAME (private unless --public; an existing one keeps its visibility) "
            f"and upload the model files of DIR into it. {ALLOW_LIST_NOTE} The token comes from --token, HF_TOKEN "
            "or `hf auth login`."
        ),
    )
    push.add_argument("folder", type=Path, metavar="DIR", help="folder to upload (e.g. written by export-hub)")
    push.add_argument("--repo-id", required=True, type=_repo_id, help="Hub repository id ORG/NAME")
    push.add_argument(
        "--space",
        action="store_true",
        help="upload to a Space repository (Gradio SDK; the folder made with `export-hub --space`) instead of a "
        "model repository",
    )
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
    """List the files of the export (with `--dry-run`, only list them) and write the exported folder."""
    from modeling_m2f_video.hub import check_export_output, plan_hub_export

    output = check_export_output(args.model_dir, args.output, overwrite=args.overwrite)
    export = plan_hub_export(args.model_dir, model_id=args.repo_id)
    if args.space:
        from modeling_m2f_video.app.space import add_space_files

        export = add_space_files(export)
    verb = "would write" if args.dry_run else "writing"
    _print_files(f"{verb} {{count}} files ({{size}}) to {output}:", export.sizes(), export.left_out, "exported")
    if args.dry_run:
        return 0
    print(f"exported to {export.publish(output, overwrite=args.overwrite)}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    """Print the upload plan; unless `--dry-run`, create the repository and upload."""
    from modeling_m2f_video.app.space import space_file_names
    from modeling_m2f_video.hub import folder_warnings, push_folder, upload_plan

    plan = upload_plan(args.folder, space_file_names())
    visibility = "public" if args.public else "private"
    verb = "would upload" if args.dry_run else "uploading"
    kind = "Space" if args.space else "model repository"
    _print_files(
        f"{verb} {{count}} files ({{size}}) to the {kind} {args.repo_id} ({visibility}):", plan.files, plan.left_out
    )
    for warning in folder_warnings(args.folder):
        print(f"warning: {warning}", file=sys.stderr)
    if args.dry_run:
        return 0
    commit = push_folder(
        args.folder,
        args.repo_id,
        private=not args.public,
        token=args.token,
        commit_message=args.commit_message,
        extra_names=space_file_names(),
        repo_type="space" if args.space else "model",
    )
    print(f"uploaded: {commit}")
    return 0


def _print_files(title: str, files: list[tuple[str, int]], left_out: list[str], verb: str = "uploaded") -> None:
    """`title` (with `{count}` and `{size}` filled in), one `  name  size` line per file, and what is left out."""
    print(title.format(count=len(files), size=_size_text(sum(size for _, size in files))))
    for name, size in files:
        print(f"  {name}  {_size_text(size)}")
    if left_out:
        print(f"not {verb} (not part of a model repository): {', '.join(left_out)}")


def _size_text(size: int) -> str:
    """A byte count for people: `512 B`, `3.4 KB`, `1.2 GB`."""
    value, unit = float(size), "B"
    for larger_unit in ("KB", "MB", "GB"):
        if round(value, 1) < 1000:
            break
        value, unit = value / 1000, larger_unit
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
