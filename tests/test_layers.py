"""The layers of the package import only downward, and importing the package (or asking the CLI for help) is cheap.

Layers, low to high (docs/design.md): config, YouTube-VIS formats and model -> processing -> inference core ->
pipeline / batch prediction / training / evaluation / conversion / Hub -> CLI.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Installed package name -> source folder (setup.cfg's package_dir).
SOURCES = {
    "modeling_m2f_video": ROOT / "modeling_m2f_video",
    "modeling_m2f_video.configuration": ROOT / "configuration",
    "modeling_m2f_video.processing": ROOT / "processing",
    "modeling_m2f_video.conversion": ROOT / "conversion",
}
# The layer of each part of the package; a module may import only from its own layer's part or from lower layers.
LAYERS = {
    "configuration": 0,
    "ytvis": 0,
    "backbone_adaptations": 1,
    "loss_m2f_video": 1,
    "modeling_m2f_video": 1,
    "deformable_attention": 1,
    "auto": 2,
    "processing": 2,
    "inference": 3,
    "pipeline_video_instance_segmentation": 4,
    "model_cards": 4,
    "visualization": 4,
    "registration": 5,
    "batch_prediction": 6,
    "demo": 6,
    "training": 6,
    "evaluation": 1,
    "conversion": 6,
    "hub": 6,
    "deployment": 6,
    "app": 6,
    "commands": 7,
    "cli": 7,
    "train": 7,
    "_lazy": 0,
    "errors": 0,
    "_compat": 0,
    "__init__": 8,
}


def package_modules() -> dict[str, Path]:
    """Installed module name -> file, for every Python file of the package."""
    modules = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            relative = path.relative_to(folder).with_suffix("").parts
            if package == "modeling_m2f_video" and relative[0] in ("configuration", "processing", "conversion"):
                continue
            modules[".".join((package, *relative))] = path
    return modules


def part_of(module: str) -> str:
    """The top-level part of the package a module belongs to (`modeling_m2f_video.training.loop` -> `training`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported_modules(module: str, path: Path) -> set[str]:
    """The package modules that `module` imports (absolute or relative, at any depth of the file)."""
    is_package = path.name == "__init__.py"
    anchor = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            target = __import__("importlib.util").util.resolve_name(base, anchor) if node.level else node.module
            found.add(target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "modeling_m2f_video" or name.startswith("modeling_m2f_video.")}


@pytest.mark.parametrize("module", sorted(package_modules()))
def test_imports_go_only_downward(module):
    path = package_modules()[module]
    own = part_of(module)
    assert own in LAYERS, f"{module}: add its part {own!r} to LAYERS"
    for target in imported_modules(module, path):
        other = part_of(target)
        if other == own or target == "modeling_m2f_video":
            continue
        assert LAYERS[other] <= LAYERS[own], f"{module} (layer {LAYERS[own]}) imports {target} (layer {LAYERS[other]})"


def test_no_library_module_imports_the_cli():
    for module, path in package_modules().items():
        if part_of(module) in ("commands", "cli", "train"):
            continue
        assert not any(part_of(t) in ("commands", "cli") for t in imported_modules(module, path)), module


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


HEAVY = ("torch", "transformers", "av", "pycocotools", "scipy", "accelerate")


def assert_imports_nothing_heavy(code: str, what: str) -> None:
    """`code`, run in a fresh interpreter, leaves none of the `HEAVY` modules imported."""
    loaded = set(run_python(code + "\nprint(' '.join(sorted(sys.modules)))").split())
    assert not loaded & set(HEAVY), f"{what} imports {sorted(loaded & set(HEAVY))}"


def test_importing_the_package_imports_no_heavy_dependency():
    assert_imports_nothing_heavy("import sys, modeling_m2f_video", "`import modeling_m2f_video`")


def test_cli_help_imports_no_heavy_dependency():
    code = (
        "import sys, contextlib, io\n"
        "from modeling_m2f_video.cli import build_parser\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    build_parser()"
    )
    assert_imports_nothing_heavy(code, "building the CLI parser")


def test_first_use_of_a_name_registers_with_transformers():
    code = (
        "import modeling_m2f_video\n"
        "from transformers import AutoConfig\n"
        "from transformers.pipelines import PIPELINE_REGISTRY\n"
        "modeling_m2f_video.Mask2FormerVideoConfig\n"
        "print(AutoConfig.for_model('mask2former_video').model_type, 'video-instance-segmentation' in "
        "PIPELINE_REGISTRY.get_supported_tasks())"
    )
    assert run_python(code).split() == ["mask2former_video", "True"]


def test_old_import_paths_still_work_with_a_warning():
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    from modeling_m2f_video.long_video import segment_video_by_clips\n"
        "    from modeling_m2f_video.ytvis_io import predictions_to_records, split_by_video, decode_rle_strings\n"
        "    from modeling_m2f_video.ytvis_eval import evaluate_ytvis\n"
        "    from modeling_m2f_video.model_paths import resolve_model_path\n"
        "    from modeling_m2f_video.processing.ytvis_data import build_ytvis_index\n"
        "print(sum(issubclass(w.category, FutureWarning) for w in caught))"
    )
    assert run_python(code).strip() == "5"
