"""Helpers: run ``dporch backtest`` in-process (threaded scheduler) on small data written to a
temporary folder, and read what it wrote."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from dporch.cli.app import app

#: Buy, sell or hold as the data's own ``sig`` column says (same-bar fills make it hand-checkable).
FOLLOW = """\
-- INPUT stock_code:string, date:string, close:number, sig:string --
-- OUTPUT stock_code:string, date:string, signal:string --
return [stock_code, date, sig]
"""


@dataclass
class Run:
    code: int
    output: str
    out: Path

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads((self.out / "summary.json").read_text(encoding="utf-8"))

    @property
    def portfolio(self) -> dict[str, Any]:
        return self.summary["portfolio"]

    def csv(self, name: str) -> pd.DataFrame:
        return pd.read_csv(self.out / name, dtype={"instrument": str}, keep_default_na=False, na_values=[""])


@pytest.fixture
def backtest(tmp_path):
    """``backtest(csv_text, *options, script=FOLLOW)`` -> Run."""
    counter = iter(range(1000))

    def go(data: str, *options: str, script: str = FOLLOW, html: bool = False) -> Run:
        i = next(counter)
        s = tmp_path / f"s{i}.dp"
        s.write_text(textwrap.dedent(script), encoding="utf-8")
        d = tmp_path / f"d{i}.csv"
        d.write_text(textwrap.dedent(data).lstrip("\n"), encoding="utf-8")
        out = tmp_path / f"out{i}"
        args = ["backtest", str(s), str(d), "--out", str(out), *options]
        if not html:
            args.append("--no-html")
        r = CliRunner().invoke(app, args)
        return Run(r.exit_code, " ".join(r.output.split()), out)
    return go
