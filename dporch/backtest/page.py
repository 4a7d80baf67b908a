"""report.html: the standalone Bokeh page of a backtest, drawn from :func:`report.page_data`
(text and numpy arrays: this module imports neither pandas nor the rest of dporch, so the
helper process that draws it starts fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["draw"]


def _figure(title: str, height: int, **kw: Any) -> Any:
    from bokeh.plotting import figure

    fig = figure(title=title, height=height, sizing_mode="stretch_width", min_border_left=90, **kw)
    fig.toolbar.logo = None
    return fig


def draw(data: dict[str, Any], path: Path) -> None:
    """Write the page: header and metrics, the sweep's heatmap, the equity and drawdown on date
    axes, each charted instrument's price with its fills, and the instruments' table."""
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, DatetimeTickFormatter, Div, HoverTool, NumeralTickFormatter
    from bokeh.resources import INLINE

    def dates() -> Any:
        return DatetimeTickFormatter(days="%Y-%m-%d", months="%Y-%m", years="%Y", hours="%m-%d %H:%M",
                                     minutes="%m-%d %H:%M")

    parts: list[Any] = [Div(text=data["header"], sizing_mode="stretch_width")]
    if data.get("sweep"):
        parts += _sweep(data["sweep"])
    src = ColumnDataSource({"time": data["time"], "equity": data["equity"], "drawdown": data["drawdown"]})
    eq = _figure("Portfolio equity", 300, x_axis_type="datetime")
    eq.line("time", "equity", source=src, line_width=2)
    eq.add_tools(HoverTool(tooltips=[("time", "@time{%F %H:%M}"), ("equity", "@equity{0,0.00}")],
                           formatters={"@time": "datetime"}, mode="vline"))
    eq.xaxis.formatter = dates()
    eq.yaxis.formatter = NumeralTickFormatter(format="0,0")
    dd = _figure("Drawdown (%)", 180, x_axis_type="datetime", x_range=eq.x_range)
    dd.varea("time", 0, "drawdown", source=src, fill_alpha=0.4, fill_color="firebrick")
    dd.add_tools(HoverTool(tooltips=[("time", "@time{%F %H:%M}"), ("drawdown", "@drawdown{0.00}%")],
                           formatters={"@time": "datetime"}, mode="vline"))
    dd.xaxis.formatter = dates()
    dd.yaxis.formatter = NumeralTickFormatter(format="0.0")
    parts += [eq, dd]
    if data.get("note"):
        parts.append(Div(text=data["note"], sizing_mode="stretch_width"))
    for c in data["charts"]:
        fig = _figure(f"{c['key']}: price and fills", 220, x_axis_type="datetime", x_range=eq.x_range)
        line = fig.line(c["time"], c["close"], color="gray")
        fig.add_tools(HoverTool(renderers=[line], tooltips=[("time", "$x{%F %H:%M}"), ("close", "$y{0.00}")],
                                formatters={"$x": "datetime"}, mode="vline"))
        if len(c["buy_time"]):
            fig.scatter(c["buy_time"], c["buy_price"], marker="triangle", size=9, color="green", legend_label="buy")
        if len(c["sell_time"]):
            fig.scatter(c["sell_time"], c["sell_price"], marker="inverted_triangle", size=9, color="red",
                        legend_label="sell")
        if len(c["buy_time"]) or len(c["sell_time"]):
            fig.legend.location = "top_left"
        fig.xaxis.formatter = dates()
        fig.yaxis.formatter = NumeralTickFormatter(format="0,0.00")
        parts.append(fig)
    parts.append(Div(text=data["instruments"], sizing_mode="stretch_width"))
    Path(path).write_text(file_html(column(*parts, sizing_mode="stretch_width"), INLINE, "dporch backtest"),
                          encoding="utf-8")


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
