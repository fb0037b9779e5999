"""Names a subpackage re-exports, imported from their submodule on first use (PEP 562).

A subpackage ``__init__`` that imports its submodules makes ``import dosimetry.<sub>.<light module>`` pay for
all of them (the command line's parser imports ``dosimetry.batch.command``, which must not bring in the
batch executors). Instead::

    __getattr__, __all__ = lazy_exports(__name__, {"run_batch": "api", ...})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], object], list[str]]:
    """The module ``__getattr__`` of ``package`` for ``names`` (public name -> submodule), and ``__all__``."""

    def __getattr__(name: str):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # found directly next time
        return value

    return __getattr__, sorted(names)
