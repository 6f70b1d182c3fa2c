"""The files that make a folder written by `m2f-video export-hub` a Hugging Face Space that runs the web app.

[`add_space_files`] adds to a planned `m2f-video export-hub` folder (`export-hub --space`), beside the model and its
remote code:
- flat copies of the app's modules (`interface.py` and the package modules it imports that the remote code does
  not already hold), made the way the remote code is made (`hub.remote_code`): the installed source with its
  package imports made relative, so they cannot drift from the package;
- `app.py`, which imports those copies as one package, loads the model from its own folder with
  `trust_remote_code=True` (the exported model code) and serves the page;
- `requirements.txt`: the distributions that the folder's Python files import;
- `demo_video.mp4`, the example video, and the Space settings (`sdk: gradio`, `app_file: app.py`) in the
  metadata of the model card (`README.md`).

Nothing here imports Gradio: exporting works without the app extra.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.metadata
import sys
import tempfile
from pathlib import Path

from ..demo import DEMO_VIDEO_NAME
from ..hub.remote_code import HubExport, flat_module_names, package_dependencies, rewrite_imports

# Flat name -> package module: the app's modules that the Space imports; the package modules they import come too.
SPACE_MODULES = {"interface": "modeling_m2f_video.app.interface"}
APP_FILE = "app.py"
REQUIREMENTS_FILE = "requirements.txt"
EXAMPLE_FILE = f"{DEMO_VIDEO_NAME}.mp4"
CARD_FILE = "README.md"
PACKAGE_DISTRIBUTION = "m2f-video"

APP_SOURCE = '''"""A Hugging Face Space: the m2f-video web app on the model of this folder (written by `m2f-video export-hub`).

Everything it runs is in this folder: the model and its code, which transformers loads with trust_remote_code, and
the app's code (`interface.py` and the flat modules it imports), so the Space needs only requirements.txt.
"""

import importlib
import importlib.util
import sys
from pathlib import Path

from transformers import pipeline

HERE = Path(__file__).resolve().parent
CODE_PACKAGE = "m2f_video_space"  # this folder's flat modules import each other relatively: they form one package


def import_from_folder(name: str):
    """Import the flat module `name` of this folder as a module of `CODE_PACKAGE`."""
    if CODE_PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_loader(CODE_PACKAGE, loader=None, is_package=True)
        spec.submodule_search_locations.append(str(HERE))
        sys.modules[CODE_PACKAGE] = importlib.util.module_from_spec(spec)
    return importlib.import_module(f"{CODE_PACKAGE}.{name}")


def load_segmenter():
    """The video instance segmentation pipeline of this folder's model, with the folder's own code."""
    return pipeline("video-instance-segmentation", model=str(HERE), trust_remote_code=True)


demo = import_from_folder("interface").build_app(load_segmenter, example_video=HERE / "EXAMPLE_FILE")

if __name__ == "__main__":
    demo.launch()
'''.replace("EXAMPLE_FILE", EXAMPLE_FILE)


def add_space_files(export: HubExport) -> HubExport:
    """`export` (a planned `m2f-video export-hub` folder) with the files that make it a Hugging Face Space running
    the web app on its model, all computed in memory: `export-hub --space --dry-run` lists exactly what is
    written, and the folder is still written in one atomic step."""
    files = dict(export.files)
    files.update({name: source.encode("utf-8") for name, source in space_sources().items()})
    files[APP_FILE] = APP_SOURCE.encode("utf-8")
    requirements = space_requirements(_python_sources(files))
    files[REQUIREMENTS_FILE] = "".join(f"{line}\n" for line in requirements).encode("utf-8")
    files[EXAMPLE_FILE] = _example_video_bytes()
    files[CARD_FILE] = _card_with_space_settings(files[CARD_FILE])
    return dataclasses.replace(export, files=files)


def _python_sources(files: dict[str, bytes | Path]) -> list[str]:
    """The sources of the `.py` files of an export plan (generated ones in memory, copied ones read)."""
    contents = (files[name] for name in sorted(files) if name.endswith(".py"))
    return [
        content.decode("utf-8") if isinstance(content, bytes) else content.read_text("utf-8") for content in contents
    ]


def _example_video_bytes() -> bytes:
    """The example video's MP4 file, as bytes."""
    from .local import write_example_video

    with tempfile.TemporaryDirectory() as folder:
        return write_example_video(folder).read_bytes()


def space_file_names() -> set[str]:
    """The names of the files [`add_space_files`] adds to an exported folder (besides the card it updates)."""
    return {*space_sources(), APP_FILE, REQUIREMENTS_FILE, EXAMPLE_FILE}


def space_sources() -> dict[str, str]:
    """Flat file name -> source of `SPACE_MODULES` and the package modules they import that the remote code of an
    exported folder does not already hold, with the package imports made relative as in the remote code."""
    flat_names = dict(flat_module_names())
    in_remote_code = set(flat_names)
    pending = []
    for flat, module in SPACE_MODULES.items():
        _add_flat_name(flat_names, module, flat)
        pending.append(module)
    while pending:
        for dependency in package_dependencies(pending.pop()):
            if dependency not in flat_names:
                _add_flat_name(flat_names, dependency, dependency.rpartition(".")[2])
                pending.append(dependency)
    return {
        f"{flat_names[module]}.py": _header(module) + rewrite_imports(module, flat_names)
        for module in flat_names
        if module not in in_remote_code
    }


def _add_flat_name(flat_names: dict[str, str], module: str, flat: str) -> None:
    """Give `module` the flat name `flat`, which must be free (two modules cannot share one file)."""
    if flat in flat_names.values():
        raise ValueError(f"{module}: its flat copy {flat}.py would replace another module's; rename one of them")
    flat_names[module] = flat


def _header(module: str) -> str:
    return (
        f"# Generated by `m2f-video export-hub` from `{module}`: the web app of this Hugging Face Space.\n"
        "# A flat copy with the package imports made relative: edit the package, not this file.\n"
    )


def space_requirements(sources: list[str]) -> list[str]:
    """The requirement lines of the Space: every distribution that the Python `sources` of its folder import, with
    the version range the package asks for it (its own requirements and those of its `app` extra).

    A module that no installed distribution provides (Gradio, where the app extra is not installed) is taken to be
    its own distribution's name.
    """
    distributions = importlib.metadata.packages_distributions()
    imported = set().union(*(_imported_top_level(source) for source in sources))
    names = {dist.lower() for module in imported for dist in distributions.get(module, [module])}
    ranges = _package_ranges()
    return sorted(ranges.get(name, name) for name in names)


def _imported_top_level(source: str) -> set[str]:
    """The top-level names of the modules a Python source imports absolutely, less the standard library's."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names - set(sys.stdlib_module_names)


def _package_ranges() -> dict[str, str]:
    """Distribution name (lower case) -> requirement line, from the package's requirements and its `app` extra."""
    from packaging.requirements import Requirement

    ranges = {}
    for line in importlib.metadata.requires(PACKAGE_DISTRIBUTION) or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": "app"}):
            ranges[requirement.name.lower()] = f"{requirement.name}{requirement.specifier}"
    return ranges


def _card_with_space_settings(card_file: bytes | Path) -> bytes:
    """The model card with the Space settings (`sdk: gradio`, `app_file`) added to its metadata, where the Hub
    reads them; export-hub always plans a card."""
    from huggingface_hub import RepoCard

    text = card_file.decode("utf-8") if isinstance(card_file, bytes) else card_file.read_text("utf-8")
    card = RepoCard(text)
    card.data.sdk = "gradio"
    card.data.app_file = APP_FILE
    try:
        card.data.sdk_version = importlib.metadata.version("gradio")
    except importlib.metadata.PackageNotFoundError:
        pass  # the Hub then picks a Gradio version
    return str(card).encode("utf-8")
