"""dporch: DPLang scripts over stock market data, on Dask.

``dporch.compile(source_or_path)`` parses and checks a script once and returns a
:class:`~dporch.engine.script.Script` whose ``run(rows_or_dataframe, key=...)`` is a batch run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["compile", "Script", "DPLangError", "__version__"]

if TYPE_CHECKING:
    from .engine.script import Script, compile  # noqa: A004
    from .lang.errors import DPLangError

# Loaded on first use (PEP 562): every `dporch ...` command imports this package, and the
# compiler behind ``compile`` is not what `dporch --help` or the task commands need.
_LAZY = {"compile": "engine.script", "Script": "engine.script", "DPLangError": "lang.errors"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dporch' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
