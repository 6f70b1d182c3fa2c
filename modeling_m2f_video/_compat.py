"""Import paths of earlier releases that README documented, kept working for one release (until 0.3).

An import of an old path gives a module that forwards every name to the module(s) that now define it, with a
`FutureWarning` naming the new path.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

# Old module -> the modules that now define its names (looked up in this order).
MOVED_MODULES = {
    "modeling_m2f_video.long_video": ("modeling_m2f_video.inference.clip_by_clip",),
    "modeling_m2f_video.model_paths": ("modeling_m2f_video.demo",),
    "modeling_m2f_video.video_io": ("modeling_m2f_video.processing.video_io",),
    "modeling_m2f_video.ytvis_eval": ("modeling_m2f_video.evaluation.metric",),
    "modeling_m2f_video.ytvis_io": (
        "modeling_m2f_video.ytvis.reader",
        "modeling_m2f_video.ytvis.records",
        "modeling_m2f_video.ytvis.rle",
    ),
    "modeling_m2f_video.processing.ytvis_data": ("modeling_m2f_video.processing.ytvis_dataset",),
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old paths of `MOVED_MODULES` and loads them as forwarding modules."""

    def find_spec(self, fullname: str, path, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED_MODULES else None

    def create_module(self, spec):
        return None  # a plain module

    def exec_module(self, module: ModuleType) -> None:
        targets = MOVED_MODULES[module.__name__]
        warnings.warn(
            f"{module.__name__} moved to {' / '.join(targets)}; the old path goes away in m2f-video 0.3",
            FutureWarning,
            stacklevel=2,
        )

        def forward(name: str):
            for target in targets:
                defining = importlib.import_module(target)
                if hasattr(defining, name):
                    return getattr(defining, name)
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")

        module.__getattr__ = forward


def install() -> None:
    """Make the old paths importable (once)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
