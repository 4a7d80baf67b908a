"""report.html from a helper process that starts with the command.

Importing Bokeh takes ~0.5 s, as long as the whole job on a small input. A helper process
imports it (and the report code) while the command reads and computes, on another core; the
command then sends it the result (pickled, over stdin) and writes the CSV files while the
helper draws the page. When the helper is not available (it failed to start, or died), the
command draws the page itself: the output is the same either way.

    python -m dporch.backtest.page_process      # reads pickled messages from stdin (see main)
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

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        self.hinted = False
        try:
            self.proc: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, "-m", "dporch.backtest.page_process"], stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        except OSError:
            self.proc = None

    def _write(self, message: tuple) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            assert self.proc.stdin is not None
            pickle.dump(message, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
            return True
        except (OSError, pickle.PicklingError, ValueError):
            self.cancel()
            return False

    def panels(self, n: int) -> None:
        """The page will have ``n`` instrument panels: the helper builds them meanwhile."""
        if not self.hinted:
            self.hinted = self._write(("panels", n))

    def send(self, data: dict[str, Any], path: Path) -> bool:
        """Hand the page over (``report.page_data``); False if the helper cannot take it."""
        if not self._write(("page", data, str(path))):
            return False
        try:
            assert self.proc is not None and self.proc.stdin is not None
            self.proc.stdin.close()
        except OSError:
            pass
        return True

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


def main() -> int:
    """Import Bokeh, build the models of the page with as many panels as announced (a
    ``("panels", n)`` message, sent once the command knows the instruments), then draw the
    ``("page", data, path)`` message's page. End of input without a page: nothing to do."""
    from bokeh.embed import file_html
    from bokeh.models import Div
    from bokeh.resources import INLINE

    from .page import Page, draw

    file_html(Div(text=""), INLINE, "")  # loads the templates and scripts: the first page costs more
    page = None
    stream = sys.stdin.buffer
    while True:
        try:
            message = pickle.load(stream)
        except EOFError:
            return 0  # the command did not need a page after all
        if message[0] == "panels":
            page = Page(message[1])
        else:
            _, data, path = message
            draw(data, Path(path), page)
            sys.stderr.flush()
            os._exit(0)  # the page is written: skip the interpreter's teardown (~0.1 s of module cleanup)


if __name__ == "__main__":
    raise SystemExit(main())
