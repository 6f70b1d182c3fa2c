"""Lazy package attributes (PEP 562), in the spirit of transformers' `_LazyModule`: a package names what it exports
and from which submodule, and a submodule is imported only when one of its names is first used. So importing a
package costs nothing until it is used, and `m2f-video --help` does not import torch."""

import importlib
from collections.abc import Callable
from typing import Any


def attach(
    package: str, exports: dict[str, list[str]], on_first_use: Callable[[], None] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """`__getattr__`, `__dir__` and `__all__` of `package`, for `exports` = {submodule: [names it defines]}.

    `on_first_use` runs once, before the first exported name is imported.
    """
    module_of = {name: module for module, names in exports.items() for name in names}
    pending_hook = on_first_use

    def __getattr__(name: str) -> Any:
        nonlocal pending_hook
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if pending_hook is not None:
            hook, pending_hook = pending_hook, None
            hook()
        value = getattr(importlib.import_module(f".{module_of[name]}", package), name)
        setattr(importlib.import_module(package), name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(module_of)

    return __getattr__, __dir__, sorted(module_of)
