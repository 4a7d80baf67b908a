"""The Bokeh document of the dashboard's ``/dporch`` page: one per browser tab, refreshed once a
second from the :class:`~.plugin.DporchPlugin` (it never asks dporch serve anything itself)."""

from __future__ import annotations

import math
import zlib
from typing import Any

from bokeh.layouts import column, gridplot, row
from bokeh.models import (CDSView, ColumnDataSource, DataRange1d, DataTable, Div, FactorRange, GroupFilter,
                          HoverTool, HTMLTemplateFormatter, LinearAxis, NumberFormatter, Range1d, Select, TableColumn,
                          TapTool)
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from .plugin import SERIES, DporchPlugin

__all__ = ["DporchPage", "color_of"]

REFRESH_MS = 1000
WINDOW_MS = 10 * 60 * 1000  # the time series show the last ten minutes
STREAM_MS = 30 * 1000  # the unit stream shows the last thirty seconds
STREAM_BARS = 5000  # bars kept in a page's unit stream


def color_of(task: str) -> str:
    """A task's colour, the same on every page and in every session."""
    return Category10_10[zlib.crc32(task.encode()) % len(Category10_10)]


def _num(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:,.{digits}f}"


_TASK_CELL = HTMLTemplateFormatter(template='<span style="color:<%= color %>">&#9632;</span> <%= value %>')
_STATE_CELL = HTMLTemplateFormatter(template='<span style="color:<%= state_color %>"><%= value %></span>')
NOTE = ("<p style='margin:18px 0 0 12px;color:#555'>The plots show the selected task over the last ten minutes; "
        "the table, every task now. Figures come from <code>dporch serve</code> once a second as Dask events "
        "(topic <code>dporch</code>). Compute units are Dask actors: their calls are not Dask tasks, so Task "
        "Stream and Progress do not show them; the unit stream below does.</p>")
STATE_COLORS = {"ready": "#6c757d", "running": "#2e7d32", "paused": "#ef6c00", "stopped": "#455a64",
                "error": "#c62828"}
# The workflow graph, in layers (x, one unit each) and rows (y, downwards): boxes of BOX_W x BOX_H;
# an edge that skips layers bows up by BOW rows, over the boxes between its ends.
BOX_W, BOX_H, BOW = 0.74, 0.62, 0.7
HEAD_GAP = 0.02  # layers between an arrowhead's centre and the box it points at
GRAPH_ROW_PX = 58  # pixels per row
GRAPH_MIN_LAYERS = 5  # the x range shows at least this many layers, so a short chain keeps small boxes
EDGE_COLOR = "#607080"
LABEL_CHARS = 24


class DporchPage:
    def __init__(self, plugin: DporchPlugin):
        self.plugin = plugin
        self.selected: str | None = None
        self.count = 0  # points of the selected task already on the page
        # calls already streamed: a new page starts with the last STREAM_BARS the plugin holds
        self.calls = plugin.call_count - min(len(plugin.calls), STREAM_BARS)

        self.select = Select(title="Task", options=[], width=320, name="dporch-task-select")
        self.select.on_change("value", self._chosen)
        self.note = Div(text="", sizing_mode="stretch_width", name="dporch-note")

        self.series = ColumnDataSource(data={name: [] for name in ("time", *SERIES)}, name="dporch-series")
        x = DataRange1d(follow="end", follow_interval=WINDOW_MS, range_padding=0)

        # Three figures with a second y axis each (not six: every figure is redrawn each second,
        # and the browser's cost is mostly per figure), one toolbar for the three.
        def ts(title: str, name: str, left: str, right: str) -> Any:
            fig = figure(title=title, name=name, x_axis_type="datetime", x_range=x, height=230,
                         sizing_mode="stretch_width", tools="xpan,xwheel_zoom,box_zoom,reset",
                         y_range=DataRange1d(start=0, range_padding=0.1))
            fig.extra_y_ranges = {"right": DataRange1d(start=0, range_padding=0.1)}
            fig.add_layout(LinearAxis(y_range_name="right", axis_label=right), "right")
            fig.yaxis[0].axis_label = left
            return fig

        def hover(fig: Any, fields: list[tuple[str, str]]) -> None:
            fig.add_tools(HoverTool(tooltips=[("time", "@time{%H:%M:%S}")] + fields,
                                    formatters={"@time": "datetime"}, mode="vline"))

        f_rows = ts("Rows per second, errors per second", "dporch-rows", "rows/s", "errors/s")
        f_rows.vbar(x="time", top="errors_per_second", width=800, source=self.series, color="#d62728",
                    y_range_name="right", legend_label="errors/s")
        f_rows.line("time", "rows_per_second", source=self.series, line_width=2, color="#1f77b4",
                    legend_label="rows/s")
        hover(f_rows, [("rows/s", "@rows_per_second{0,0.0}"), ("errors/s", "@errors_per_second"),
                       ("errors", "@error_count{0,0}")])
        f_load = ts("Load rate against the scale threshold; compute units", "dporch-load", "load rate", "units")
        f_load.y_range = Range1d(0, 1.05)
        f_load.step("time", "max_pool_size", source=self.series, line_dash="dashed", color="#7f7f7f",
                    legend_label="units max", mode="after", y_range_name="right")
        f_load.step("time", "compute_pool_size", source=self.series, line_width=2, color="#2ca02c",
                    legend_label="units held", mode="after", y_range_name="right")
        f_load.line("time", "active_workers", source=self.series, color="#ff7f0e", legend_label="units busy",
                    y_range_name="right")
        f_load.line("time", "load_rate", source=self.series, line_width=2, color="#9467bd", legend_label="load")
        f_load.line("time", "scale_threshold", source=self.series, line_dash="dashed", color="#d62728",
                    legend_label="threshold")
        hover(f_load, [("load", "@load_rate{0.00}"), ("threshold", "@scale_threshold{0.00}"),
                       ("units busy/held/max", "@active_workers/@compute_pool_size/@max_pool_size")])
        f_lat = ts("Latency, arrival to result; queue length", "dporch-latency", "ms", "rows queued")
        f_lat.varea(x="time", y1=0, y2="queue_length", source=self.series, color="#8c564b", alpha=0.25,
                    y_range_name="right", legend_label="queue")
        f_lat.line("time", "latency_ms_p50", source=self.series, line_width=2, color="#17becf", legend_label="p50")
        f_lat.line("time", "latency_ms_p99", source=self.series, line_width=2, color="#e377c2", legend_label="p99")
        hover(f_lat, [("p50 ms", "@latency_ms_p50{0.0}"), ("p99 ms", "@latency_ms_p99{0.0}"),
                      ("queue", "@queue_length{0,0}")])
        for fig in (f_rows, f_load, f_lat):  # legends under the plots, out of the data's way
            legend = fig.legend[0]
            legend.orientation = "horizontal"
            legend.location = "center"
            legend.label_text_font_size = "8pt"
            legend.spacing = 6
            legend.padding = 2
            legend.margin = 0
            legend.border_line_alpha = 0
            fig.add_layout(legend, "below")
        self.figures = [f_rows, f_load, f_lat]
        self.timeseries = gridplot([self.figures], sizing_mode="stretch_width", toolbar_location="right",
                                   merge_tools=True)

        self.tasks = ColumnDataSource(data=self._task_rows(), name="dporch-tasks")
        num = NumberFormatter(format="0,0.0")
        self.tasks_table = DataTable(source=self.tasks, name="dporch-tasks-table", height=_table_height(0), index_position=None,
                                     sizing_mode="stretch_width", columns=[
            TableColumn(field="task", title="task", formatter=_TASK_CELL),
            TableColumn(field="status", title="state", formatter=_STATE_CELL),
            TableColumn(field="rows_per_second", title="rows/s", formatter=num),
            TableColumn(field="load", title="load / threshold"),
            TableColumn(field="units", title="units busy/held/max"),
            TableColumn(field="queue_length", title="queue", formatter=NumberFormatter(format="0,0")),
            TableColumn(field="p50", title="p50 ms"),
            TableColumn(field="p99", title="p99 ms"),
            TableColumn(field="error_count", title="errors", formatter=NumberFormatter(format="0,0")),
            TableColumn(field="processed_count", title="processed", formatter=NumberFormatter(format="0,0")),
        ])

        # the tasks' graph, as dporch serve laid it out: clicking a task selects it
        self.graph_nodes = ColumnDataSource(data=_graph_nodes([], None), name="dporch-graph-nodes")
        self.graph_edges = {via: ColumnDataSource(data=_graph_edges([], {}, via), name=f"dporch-graph-{via}-edges")
                            for via in ("task", "file")}
        self.graph_count = -1  # the plugin's graph_count drawn
        self.graph_fig = figure(title="Workflow: solid arrows carry a task's rows to a task, dashed ones its files; "
                                      "colour: state; click a task to show it",
                                name="dporch-graph", height=_graph_height(1), sizing_mode="stretch_width",
                                x_range=Range1d(-0.5, GRAPH_MIN_LAYERS - 0.5), y_range=Range1d(-0.5, 0.5),
                                tools="", toolbar_location=None, visible=False)
        self.graph_fig.axis.visible = False
        self.graph_fig.grid.visible = False
        self.graph_fig.outline_line_color = None
        for via, dash in (("task", "solid"), ("file", "dashed")):
            src = self.graph_edges[via]
            self.graph_fig.bezier(x0="x0", y0="y0", x1="x1", y1="y1", cx0="cx0", cy0="cy0", cx1="cx1", cy1="cy1",
                                  source=src, line_color=EDGE_COLOR, line_width=1.6, line_dash=dash)
            self.graph_fig.scatter(x="x1", y="y1", marker="triangle", angle=-math.pi / 2, size=9, source=src,
                                   color=EDGE_COLOR)
        boxes = []
        for kind, radius in (("batch", 2), ("realtime", 12)):  # square corners, round ones: as in the console
            box = self.graph_fig.rect(x="x", y="y", width=BOX_W, height=BOX_H, source=self.graph_nodes,
                                      view=CDSView(filter=GroupFilter(column_name="kind", group=kind)),
                                      fill_color="color", line_color="line", line_width="line_width",
                                      border_radius=radius)
            box.nonselection_glyph = box.selection_glyph = None  # a click selects a task, not a box
            boxes.append(box)
        self.graph_fig.text(x="x", y="label_y", text="label", source=self.graph_nodes, text_color="#ffffff",
                            text_align="center", text_baseline="middle", text_font_size="9.5pt",
                            text_font_style="bold")
        self.graph_fig.text(x="x", y="detail_y", text="detail", source=self.graph_nodes, text_color="#ffffff",
                            text_align="center", text_baseline="middle", text_font_size="8pt", text_alpha=0.85)
        self.graph_fig.add_tools(TapTool(renderers=boxes),
                                 HoverTool(renderers=boxes, tooltips=[("task", "@key"), ("kind", "@kind"),
                                                                      ("state", "@status")]))
        self.graph_nodes.selected.on_change("indices", self._tapped)

        self.units = ColumnDataSource(data=self._unit_rows(), name="dporch-units")
        self.units_table = DataTable(source=self.units, name="dporch-units-table", height=_table_height(0), index_position=None,
                                     sizing_mode="stretch_width", columns=[
            TableColumn(field="unit", title="compute unit", formatter=_TASK_CELL),
            TableColumn(field="worker", title="worker"),
            TableColumn(field="status", title="status"),
            TableColumn(field="keys", title="keys held", formatter=NumberFormatter(format="0,0")),
            TableColumn(field="rows_per_second", title="rows/s", formatter=num),
            TableColumn(field="busy", title="busy", formatter=NumberFormatter(format="0%")),
            TableColumn(field="in_flight", title="batches in flight"),
            TableColumn(field="rows", title="rows", formatter=NumberFormatter(format="0,0")),
        ])

        self.stream = ColumnDataSource(data={"unit": [], "task": [], "start": [], "end": [], "rows": [],
                                             "ms": [], "color": []}, name="dporch-unit-stream")
        self.stream_fig = figure(title="Unit stream: one bar per batch per compute unit (colour: task)",
                                 name="dporch-unit-stream-figure", x_axis_type="datetime", height=220,
                                 y_range=FactorRange(factors=[]), sizing_mode="stretch_width",
                                 x_range=DataRange1d(follow="end", follow_interval=STREAM_MS, range_padding=0),
                                 tools="xpan,xwheel_zoom,reset", toolbar_location="right")
        self.stream_fig.toolbar.autohide = True
        self.stream_fig.hbar(y="unit", left="start", right="end", height=0.8, color="color", source=self.stream,
                             line_color=None)
        self.stream_fig.add_tools(HoverTool(tooltips=[("unit", "@unit"), ("task", "@task"), ("rows", "@rows"),
                                                      ("took", "@ms{0.0} ms")]))
        self.stream_fig.yaxis.major_label_text_font_size = "8pt"

        self.root = column(
            row(self.select, self.note, sizing_mode="stretch_width"),
            self.tasks_table,
            self.graph_fig,
            self.timeseries,
            self.stream_fig,
            self.units_table,
            sizing_mode="stretch_width", name="dporch-root")
        self.update()

    # -- tables -------------------------------------------------------------------------------------------
    def _task_rows(self) -> dict[str, list]:
        cols: dict[str, list] = {k: [] for k in ("task", "color", "status", "state_color", "rows_per_second", "load",
                                                 "units", "queue_length", "p50", "p99", "error_count",
                                                 "processed_count")}
        for key in self.plugin.task_keys():
            s = self.plugin.series[key].latest
            cols["task"].append(key)
            cols["color"].append(color_of(key))
            cols["status"].append(s.get("status"))
            cols["state_color"].append(STATE_COLORS.get(s.get("status"), "#000"))
            cols["rows_per_second"].append(s.get("rows_per_second") or 0.0)
            cols["load"].append(f"{_num(s.get('load_rate'), 2)} / {_num(s.get('scale_threshold'), 2)}")
            cols["units"].append(f"{s.get('active_workers', 0)}/{s.get('compute_pool_size', 0)}/"
                                 f"{s.get('max_pool_size', 0)}")
            cols["queue_length"].append(s.get("queue_length") or 0)
            cols["p50"].append(_num(s.get("latency_ms_p50")))
            cols["p99"].append(_num(s.get("latency_ms_p99")))
            cols["error_count"].append(s.get("error_count") or 0)
            cols["processed_count"].append(s.get("processed_count") or 0)
        return cols

    def _unit_rows(self) -> dict[str, list]:
        cols: dict[str, list] = {k: [] for k in ("unit", "color", "worker", "status", "keys", "rows_per_second",
                                                 "busy", "in_flight", "rows")}
        for u in sorted(self.plugin.all_units(), key=lambda u: (u["task"], u["id"])):
            cols["unit"].append(u["id"])
            cols["color"].append(color_of(u["task"]))
            cols["worker"].append(u.get("worker") or "")
            cols["status"].append(u.get("status") or "")
            cols["keys"].append(u.get("keys") or 0)
            cols["rows_per_second"].append(u.get("rows_per_second") or 0.0)
            cols["busy"].append(u.get("busy_fraction") or 0.0)
            cols["in_flight"].append(u.get("in_flight") or 0)
            cols["rows"].append(u.get("rows") or 0)
        return cols

    # -- updates --------------------------------------------------------------------------------------------
    def _chosen(self, attr: str, old: Any, new: Any) -> None:
        if new != self.selected:
            self.selected = new
            self.count = 0
            self.series.data = {name: [] for name in ("time", *SERIES)}
            self._stream_series()

    def _tapped(self, attr: str, old: Any, new: Any) -> None:
        if new:
            key = self.graph_nodes.data["key"][new[0]]
            self.graph_nodes.selected.indices = []
            if key in self.plugin.series:
                self.select.value = key

    def _draw_graph(self) -> None:
        """The graph again, when it or a task's state (its colour) or the selection changed."""
        g = self.plugin.graph()
        nodes = _graph_nodes(g["nodes"], self.selected)
        if self.graph_nodes.data != nodes:
            self.graph_nodes.data = nodes
        where = {n["key"]: (n["layer"], n["row"]) for n in g["nodes"]}
        for via, src in self.graph_edges.items():
            edges = _graph_edges(g["edges"], where, via)
            if src.data != edges:
                src.data = edges
        if self.graph_count == self.plugin.graph_count:
            return
        self.graph_count = self.plugin.graph_count
        layers = max((n["layer"] for n in g["nodes"]), default=0) + 1
        rows = max((n["row"] for n in g["nodes"]), default=0) + 1
        bows = any(abs(where[e["to"]][0] - where[e["from"]][0]) > 1 for e in g["edges"]
                   if e["from"] in where and e["to"] in where)
        fig = self.graph_fig
        fig.visible = bool(g["nodes"])
        fig.x_range.end = max(layers, GRAPH_MIN_LAYERS) - 0.5
        fig.y_range.start = -rows + 0.5
        fig.y_range.end = 0.8 if bows else 0.5
        fig.height = _graph_height(fig.y_range.end - fig.y_range.start)

    def _default(self) -> str | None:
        keys = self.plugin.task_keys()
        if not keys:
            return None
        return max(keys, key=lambda k: (self.plugin.series[k].latest.get("status") == "running",
                                        self.plugin.series[k].latest.get("rows_per_second") or 0, k == keys[0]))

    def _stream_series(self) -> None:
        s = self.plugin.series.get(self.selected) if self.selected else None
        if s is None:
            return
        new = s.since(self.count)
        self.count = s.count
        if new["time"]:
            self.series.stream(new, rollover=self.plugin.history)

    def _note(self) -> str:
        if self.plugin.series:
            return NOTE
        st = self.plugin.status()
        return (f"<p style='margin:18px 0 0 12px'>No dporch task has reported yet ({st['events']} events from "
                f"{len(st['sources'])} server(s)). Start <code>dporch serve</code> against this scheduler.</p>")

    def refresh(self) -> None:
        """The periodic update, its changes sent to the browser as one message."""
        doc = self.root.document
        if doc is None:
            self.update()
            return
        doc.hold("combine")
        try:
            self.update()
        finally:
            doc.unhold()

    def update(self) -> None:
        keys = self.plugin.task_keys()
        if self.select.options != keys:
            self.select.options = keys
        if self.selected not in self.plugin.series:
            self.selected = self._default()
            self.count = 0
            self.series.data = {name: [] for name in ("time", *SERIES)}
            if self.selected is not None and self.select.value != self.selected:
                self.select.value = self.selected
        self._stream_series()
        note = self._note()
        if self.note.text != note:  # changing a Div lays the whole page out again: only when needed
            self.note.text = note
        self.tasks.data = self._task_rows()
        self._draw_graph()
        self.units.data = self._unit_rows()
        for table, source in ((self.tasks_table, self.tasks), (self.units_table, self.units)):
            height = _table_height(len(next(iter(source.data.values()))))
            if table.height != height:
                table.height = height
        calls = self.plugin.calls_since(self.calls)
        self.calls = self.plugin.call_count
        units = sorted({u["id"] for u in self.plugin.all_units()} | {c[1] for c in calls})
        factors = list(self.stream_fig.y_range.factors)
        if set(units) - set(factors):
            self.stream_fig.y_range.factors = sorted(set(factors) | set(units))
        if calls:
            self.stream.stream({"unit": [c[1] for c in calls], "task": [c[0] for c in calls],
                                "start": [c[2] for c in calls], "end": [c[3] for c in calls],
                                "rows": [c[4] for c in calls], "ms": [c[3] - c[2] for c in calls],
                                "color": [color_of(c[0]) for c in calls]}, rollover=STREAM_BARS)


def _table_height(rows: int) -> int:
    return 32 + 25 * min(max(rows, 1), 12)


def _graph_height(rows: float) -> int:
    """The figure's height for ``rows`` rows of boxes (and its title)."""
    return 40 + round(GRAPH_ROW_PX * rows)


def _graph_nodes(nodes: list[dict[str, Any]], selected: str | None) -> dict[str, list]:
    """The boxes' columns: a task at (layer, -row), filled with its state's colour; the task the
    plots show has a dark outline."""
    cols: dict[str, list] = {k: [] for k in ("key", "kind", "status", "x", "y", "label_y", "detail_y", "label",
                                             "detail", "color", "line", "line_width")}
    for n in nodes:
        key, status = n["key"], n["status"] or "unknown"
        cols["key"].append(key)
        cols["kind"].append(n["kind"])
        cols["status"].append(status)
        cols["x"].append(n["layer"])
        cols["y"].append(-n["row"])
        cols["label_y"].append(-n["row"] + 0.1)
        cols["detail_y"].append(-n["row"] - 0.15)
        cols["label"].append(key if len(key) <= LABEL_CHARS else key[:LABEL_CHARS - 1] + "…")
        cols["detail"].append(f"{n['kind']} · {status}")
        cols["color"].append(STATE_COLORS.get(status, "#9aa5b1"))
        cols["line"].append("#102a43" if key == selected else "#ffffff")
        cols["line_width"].append(3 if key == selected else 1)
    return cols


def _graph_edges(edges: list[dict[str, Any]], where: dict[str, tuple[int, int]], via: str) -> dict[str, list]:
    """The edges of one kind as Bézier curves from a box's right side to the next one's left,
    ending level (the arrowhead points right); an edge that skips layers bows up over the
    boxes between its ends."""
    cols: dict[str, list] = {k: [] for k in ("x0", "y0", "x1", "y1", "cx0", "cy0", "cx1", "cy1")}
    for e in edges:
        if e["via"] != via or e["from"] not in where or e["to"] not in where:
            continue
        (l0, r0), (l1, r1) = where[e["from"]], where[e["to"]]
        x0, x1 = l0 + BOX_W / 2, l1 - BOX_W / 2 - HEAD_GAP
        half = (x1 - x0) / 2
        bow = 2 * BOW if l1 - l0 > 1 else 0.0
        for k, v in zip(cols, (x0, -r0, x1, -r1, x0 + half, -r0 + bow, x1 - half, -r1)):
            cols[k].append(v)
    return cols


def dporch_doc(scheduler: Any, extra: dict[str, Any], doc: Any) -> None:
    """The /dporch page (a Dask dashboard application: called once per browser session)."""
    from distributed.dashboard.components.scheduler import BOKEH_THEME, env

    plugin = getattr(scheduler, "plugins", {}).get(DporchPlugin.name)
    if plugin is None:
        root = Div(text="<p>This scheduler has no dporch plugin: start it with "
                        "<code>dask scheduler --preload dporch.dashboard.preload</code>.</p>")
    else:
        page = DporchPage(plugin)
        root = page.root
        doc.add_periodic_callback(page.refresh, REFRESH_MS)
    doc.title = "Dask: dporch"
    doc.add_root(root)
    doc.template = env.get_template("simple.html")
    doc.template_variables.update(extra)
    doc.theme = BOKEH_THEME
