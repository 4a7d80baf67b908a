"""report.html: the standalone Bokeh page of a backtest, drawn from :func:`report.page_data`
(text and numpy arrays: this module imports neither pandas nor the rest of dporch, so the
helper process that draws it starts fast).

Bokeh's cost is per model (figures, axes, tools, glyphs), so :class:`Page` builds the models
before the data exists: the helper process does that while the command still computes, and
only fills them in and serialises the document once the data arrives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["Page", "draw"]


def _figure(title: str, height: int, **kw: Any) -> Any:
    from bokeh.plotting import figure

    fig = figure(title=title, height=height, sizing_mode="stretch_width", min_border_left=90, **kw)
    fig.toolbar.logo = None
    return fig


def _dates() -> Any:
    from bokeh.models import DatetimeTickFormatter

    return DatetimeTickFormatter(days="%Y-%m-%d", months="%Y-%m", years="%Y", hours="%m-%d %H:%M",
                                 minutes="%m-%d %H:%M")


class Page:
    """The page's models for up to ``charts`` instrument panels, with empty data."""

    def __init__(self, charts: int) -> None:
        from bokeh.models import ColumnDataSource, Div, HoverTool, NumeralTickFormatter

        self.header = Div(text="", sizing_mode="stretch_width")
        self.note = Div(text="", sizing_mode="stretch_width")
        self.table = Div(text="", sizing_mode="stretch_width")
        self.src = ColumnDataSource({"time": [], "equity": [], "drawdown": []})
        eq = _figure("Portfolio equity", 300, x_axis_type="datetime")
        eq.line("time", "equity", source=self.src, line_width=2)
        eq.add_tools(HoverTool(tooltips=[("time", "@time{%F %H:%M}"), ("equity", "@equity{0,0.00}")],
                               formatters={"@time": "datetime"}, mode="vline"))
        eq.xaxis.formatter = _dates()
        eq.yaxis.formatter = NumeralTickFormatter(format="0,0")
        dd = _figure("Drawdown (%)", 180, x_axis_type="datetime", x_range=eq.x_range)
        dd.varea("time", 0, "drawdown", source=self.src, fill_alpha=0.4, fill_color="firebrick")
        dd.add_tools(HoverTool(tooltips=[("time", "@time{%F %H:%M}"), ("drawdown", "@drawdown{0.00}%")],
                               formatters={"@time": "datetime"}, mode="vline"))
        dd.xaxis.formatter = _dates()
        dd.yaxis.formatter = NumeralTickFormatter(format="0.0")
        self.eq, self.dd = eq, dd
        self.panels: list[tuple[Any, Any, Any, Any]] = []
        ticks, money = _dates(), NumeralTickFormatter(format="0,0.00")
        for _ in range(charts):
            # Lean panels: pan and zoom along time, shared with the equity.
            fig = _figure("", 200, x_axis_type="datetime", x_range=eq.x_range, tools="xpan,xwheel_zoom,reset",
                          active_scroll="xwheel_zoom")
            price = ColumnDataSource({"x": [], "y": []})
            buys = ColumnDataSource({"x": [], "y": []})
            sells = ColumnDataSource({"x": [], "y": []})
            fig.line("x", "y", source=price, color="gray")
            fig.scatter("x", "y", source=buys, marker="triangle", size=9, color="green", legend_label="buy")
            fig.scatter("x", "y", source=sells, marker="inverted_triangle", size=9, color="red", legend_label="sell")
            fig.legend.location = "top_left"
            fig.legend.orientation = "horizontal"
            fig.legend.background_fill_alpha = 0.6
            fig.legend.label_text_font_size = "8pt"
            fig.legend.padding = fig.legend.spacing = 2
            fig.xaxis.formatter = ticks
            fig.yaxis.formatter = money
            self.panels.append((fig, price, buys, sells))

    def fill(self, data: dict[str, Any]) -> Any:
        from bokeh.layouts import column

        self.header.text = data["header"]
        self.table.text = data["instruments"]
        self.note.text = data.get("note") or ""
        self.src.data = {"time": data["time"], "equity": data["equity"], "drawdown": data["drawdown"]}
        parts: list[Any] = [self.header]
        if data.get("sweep"):
            parts += _sweep(data["sweep"])
        parts += [self.eq, self.dd]
        if self.note.text:
            parts.append(self.note)
        charts = data["charts"]
        while len(self.panels) < len(charts):
            self.panels += Page(1).panels
        for c, (fig, price, buys, sells) in zip(charts, self.panels):
            fig.title.text = f"{c['key']}: price and fills"
            price.data = {"x": c["time"], "y": c["close"]}
            buys.data = {"x": c["buy_time"], "y": c["buy_price"]}
            sells.data = {"x": c["sell_time"], "y": c["sell_price"]}
            has_buys, has_sells = bool(len(c["buy_time"])), bool(len(c["sell_time"]))
            fig.legend.visible = has_buys or has_sells
            fig.legend.items[0].visible, fig.legend.items[1].visible = has_buys, has_sells
            parts.append(fig)
        parts.append(self.table)
        return column(*parts, sizing_mode="stretch_width")


def draw(data: dict[str, Any], path: Path, page: Page | None = None) -> None:
    """Write the page: header and metrics, the sweep's heatmap, the equity and drawdown on date
    axes, each charted instrument's price with its fills, and the instruments' table."""
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    page = page or Page(len(data["charts"]))
    Path(path).write_text(file_html(page.fill(data), INLINE, "dporch backtest"), encoding="utf-8")


def _sweep(s: dict[str, Any]) -> list[Any]:
    from bokeh.models import ColorBar, ColumnDataSource, Div, LinearColorMapper
    from bokeh.palettes import Viridis256

    parts: list[Any] = [Div(text=s["intro"], sizing_mode="stretch_width")]
    rank = s["rank"]
    if "y" in s:
        a, b = s["names"]
        mapper = LinearColorMapper(palette=Viridis256, low=s["low"], high=s["high"], nan_color="#dddddd")
        fig = _figure(s["title"], 360, x_range=s["x_range"], y_range=s["y_range"],
                      tooltips=[(a, "@x"), (b, "@y"), (rank, "@v{0.000}")])
        fig.rect("x", "y", 1, 1, source=ColumnDataSource({"x": s["x"], "y": s["y"], "v": s["v"]}),
                 fill_color={"field": "v", "transform": mapper}, line_color=None)
        fig.add_layout(ColorBar(color_mapper=mapper, title=rank), "right")
        fig.xaxis.axis_label, fig.yaxis.axis_label = a, b
    else:
        fig = _figure(s["title"], 260, x_range=s["x"], tooltips=[(s["names"][0], "@x"), (rank, "@top{0.000}")])
        fig.vbar(x=s["x"], top=s["v"], width=0.8)
        fig.xaxis.axis_label = s["names"][0]
    parts.append(fig)
    return parts
