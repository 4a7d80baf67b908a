"""dporch: DPLang scripts over stock market data, on Dask.

``dporch.compile(source_or_path)`` parses and checks a script once and returns a
:class:`~dporch.engine.script.Script` whose ``run(rows_or_dataframe, key=...)`` is a batch run.
"""

from .engine.script import Script, compile  # noqa: A004
from .lang.errors import DPLangError

__version__ = "0.1.0"
__all__ = ["compile", "Script", "DPLangError", "__version__"]
