"""report.html from a helper process that starts with the command.

Importing Bokeh takes ~0.5 s, as long as the whole job on a small input. A helper process
imports it (and the report code) while the command reads and computes, on another core; the
command then sends it the result (pickled, over stdin) and writes the CSV files while the
helper draws the page. When the helper is not available (it failed to start, or died), the
command draws the page itself: the output is the same either way.

    python -m dporch.backtest.page_process N    # N panels; reads (page data, path) from stdin
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["PageProcess"]


class PageProcess:
    """The helper, as seen from the command."""

    def __init__(self, charts: int = 10) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        try:
            self.proc: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, "-m", "dporch.backtest.page_process", str(charts)], stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        except OSError:
            self.proc = None

    def send(self, data: dict[str, Any], path: Path) -> bool:
        """Hand the page over (``report.page_data``); False if the helper cannot take it."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            assert self.proc.stdin is not None
            pickle.dump((data, str(path)), self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.close()
            return True
        except (OSError, pickle.PicklingError, ValueError):
            self.cancel()
            return False

    def wait(self) -> bool:
        """True once the helper wrote the page."""
        if self.proc is None:
            return False
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        ok = self.proc.wait() == 0
        if not ok and err:
            sys.stderr.write(err.decode("utf-8", "replace")[-2000:])
        return ok

    def cancel(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    import bokeh.embed  # noqa: F401 - the slow imports and models first, while the command works
    import bokeh.resources  # noqa: F401

    from .page import Page, draw

    page = Page(int(args[0]) if args else 10)
    raw = sys.stdin.buffer.read()
    if not raw:
        return 0  # the command did not need a page after all
    data, path = pickle.loads(raw)
    draw(data, Path(path), page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
