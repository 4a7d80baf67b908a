"""Every message the task commands, ``dporch feed`` and the interactive client print, in
Chinese and English, so that one session never mixes the two languages.

The language comes from ``--lang``, else ``$DPORCH_LANG``, else the locale (``zh_*`` gives
Chinese, anything else English). Texts are ``str.format`` templates; a test checks that both
languages of a message take the same fields.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

__all__ = ["LANGS", "CATALOGUE", "Messages", "UserError", "file_errors", "detect_lang", "use", "current"]

LANGS = ("zh", "en")

CATALOGUE: dict[str, dict[str, str]] = {
    # -- errors common to every command -----------------------------------------------------------
    "error": {"zh": "错误", "en": "error"},
    "code.bad_request": {"zh": "请求无效", "en": "bad request"},
    "code.unknown_action": {"zh": "未知操作", "en": "unknown action"},
    "code.not_found": {"zh": "未找到", "en": "not found"},
    "code.invalid_state": {"zh": "当前状态不允许", "en": "not allowed in this state"},
    "code.invalid_config": {"zh": "配置无效", "en": "invalid configuration"},
    "code.too_large": {"zh": "请求过大", "en": "request too large"},
    "code.unauthorized": {"zh": "未授权", "en": "unauthorized"},
    "code.internal": {"zh": "服务器内部错误", "en": "server error"},
    "bad_address": {"zh": "{detail}; 服务器地址的格式是 HOST:PORT, 例如 127.0.0.1:8888",
                    "en": "{detail}; a server address is HOST:PORT, e.g. 127.0.0.1:8888"},
    "cannot_reach": {"zh": "无法连接到 {address} 的 dporch API: {reason}; dporch serve 在运行吗? "
                           "(用 --server 或 DPORCH_SERVER 指定地址)",
                     "en": "cannot reach the dporch API at {address}: {reason}; is `dporch serve` running there? "
                           "(give the address with --server or DPORCH_SERVER)"},
    "no_api": {"zh": "{address} 在 {seconds:g} 秒内没有 dporch API 应答; 这是任务的数据端口吗? "
                     "API 默认在 127.0.0.1:8888 (dporch serve --port)",
               "en": "no dporch API answered at {address} within {seconds:g} s; is it a task's data port? "
                     "The API listens on 127.0.0.1:8888 unless `dporch serve --port` says otherwise"},
    "not_api": {"zh": "{address} 有应答, 但不是 dporch API: {reply}",
                "en": "{address} answered, but it is not a dporch API: {reply}"},
    "connection_lost": {"zh": "与 {address} 的连接已断开: {reason}",
                        "en": "lost the connection to {address}: {reason}"},
    "no_answer": {"zh": "{address} 在 {seconds:g} 秒内没有应答",
                  "en": "{address} did not answer within {seconds:g} s"},
    "file_not_found": {"zh": "找不到文件 {path}", "en": "file not found: {path}"},
    "file_unreadable": {"zh": "无法读取 {path}: {reason}", "en": "cannot read {path}: {reason}"},
    "file_not_utf8": {"zh": "{path} 不是 UTF-8 文本 (第 {byte} 字节); 请先转换为 UTF-8",
                      "en": "{path} is not UTF-8 text (byte {byte}); convert it to UTF-8 first"},
    "file_bad_json": {"zh": "{path} 第 {line} 行不是 JSON 对象: {reason}",
                      "en": "{path} line {line} is not a JSON object: {reason}"},
    "file_bad_toml": {"zh": "{path} 不是有效的 TOML: {reason}", "en": "{path} is not valid TOML: {reason}"},
    "file_empty": {"zh": "{path} 没有数据行", "en": "{path} has no data rows"},
    "task_file_count": {"zh": "{path} 应当只定义一个 [[task]], 实际有 {count} 个",
                        "en": "{path} must define exactly one [[task]] table, it has {count}"},
    "file_not_table": {"zh": "{path} 应当是一个表 (TOML 或 JSON 对象)", "en": "{path} must hold one table (TOML, or a JSON object)"},
    "task_file_shape": {"zh": "{path} 应当是一个任务表 (TOML 的 [[task]] 或 JSON 对象)",
                        "en": "{path} must hold one task table (a TOML [[task]] or a JSON object)"},
    "config_header": {"zh": "{source} 中的任务配置有 {count} 个问题:",
                      "en": "the task configuration in {source} has {count} problem(s):"},
    "config_update_header": {"zh": "任务 {task_id} 的配置更改有 {count} 个问题:",
                             "en": "the changes to task {task_id} have {count} problem(s):"},
    "config_issue": {"zh": "  {field}: {message}", "en": "  {field}: {message}"},
    "set_syntax": {"zh": "--set 的格式是 section.field=value, 例如 compute_pool.max_size=8; 收到 {item!r}",
                   "en": "--set takes section.field=value, e.g. compute_pool.max_size=8; got {item!r}"},
    "filter_syntax": {"zh": "过滤条件的格式是 column=value, 例如 stock_code=000001; 收到 {item!r}",
                      "en": "a filter is column=value, e.g. stock_code=000001; got {item!r}"},
    "filter_type": {"zh": "列 {column} 的值是 {kind}; 收到 {item!r}",
                    "en": "column {column} holds a {kind} value; got {item!r}"},
    # -- task commands -----------------------------------------------------------------------------
    "created": {"zh": "✅ 任务已创建: {task_id}", "en": "✅ task created: {task_id}"},
    "created_started": {"zh": "✅ 任务已创建: {task_id} (已启动)", "en": "✅ task created and started: {task_id}"},
    "started": {"zh": "▶ 任务已启动: {task_id}", "en": "▶ task started: {task_id}"},
    "paused": {"zh": "⏸ 任务已暂停: {task_id}", "en": "⏸ task paused: {task_id}"},
    "resumed": {"zh": "▶ 任务已继续: {task_id}", "en": "▶ task resumed: {task_id}"},
    "stopped": {"zh": "⏹ 任务已停止: {task_id}", "en": "⏹ task stopped: {task_id}"},
    "deleted": {"zh": "🗑 任务已删除: {task_id}", "en": "🗑 task deleted: {task_id}"},
    "reset": {"zh": "↺ 任务已重置: {task_id}", "en": "↺ task reset: {task_id}"},
    "updated": {"zh": "✅ 任务配置已更新: {fields}", "en": "✅ task configuration updated: {fields}"},
    "pushing": {"zh": "📤 正在推送数据...", "en": "📤 pushing data..."},
    "pushed": {"zh": "✅ 已推送 {count:,} 行数据", "en": "✅ pushed {count:,} rows"},
    "pushed_errors": {"zh": "✅ 已推送 {count:,} 行数据 ({errors} 行有错误)",
                      "en": "✅ pushed {count:,} rows ({errors} rows had errors)"},
    "attached": {"zh": "✅ 文件数据已处理: {count:,} 行", "en": "✅ file data processed: {count:,} rows"},
    "output_page": {"zh": "输出结果 ({count} 行, 共 {total:,})", "en": "output ({count} rows of {total:,})"},
    "output_recent": {"zh": "输出结果 (最近{count}行):", "en": "output (last {count} rows):"},
    "col.id": {"zh": "ID", "en": "ID"},
    "col.name": {"zh": "名称", "en": "name"},
    "col.status": {"zh": "状态", "en": "status"},
    "col.pool": {"zh": "计算元池", "en": "compute pool"},
    "col.processed": {"zh": "已处理行数", "en": "rows processed"},
    "status.created": {"zh": "已创建", "en": "created"},
    "status.ready": {"zh": "就绪", "en": "ready"},
    "status.running": {"zh": "运行中", "en": "running"},
    "status.paused": {"zh": "已暂停", "en": "paused"},
    "status.stopped": {"zh": "已停止", "en": "stopped"},
    "status.error": {"zh": "错误", "en": "error"},
    "panel.title": {"zh": "任务详情:", "en": "task details:"},
    "panel.id": {"zh": "  ID: {value}", "en": "  ID: {value}"},
    "panel.name": {"zh": "  名称: {value}", "en": "  name: {value}"},
    "panel.status": {"zh": "  状态: {value}", "en": "  status: {value}"},
    "panel.scripts": {"zh": "  脚本: {value}", "en": "  scripts: {value}"},
    "panel.input": {"zh": "  输入: {value}", "en": "  input: {value}"},
    "panel.pool": {"zh": "  计算元池: {active}个活跃 (最大{max})", "en": "  compute pool: {active} active (max {max})"},
    "panel.processed": {"zh": "  已处理: {count:,} 行", "en": "  processed: {count:,} rows"},
    "panel.errors": {"zh": "  错误: {count:,} 行", "en": "  errors: {count:,} rows"},
    "panel.load": {"zh": "  负载率: {percent:.0f}%", "en": "  load rate: {percent:.0f}%"},
    "panel.throughput": {"zh": "  吞吐: {rate} 行/秒, 延迟 p99 {p99} ms",
                         "en": "  throughput: {rate} rows/s, latency p99 {p99} ms"},
    "panel.last_error": {"zh": "  最近错误: {value}", "en": "  last error: {value}"},
    # -- dporch feed ---------------------------------------------------------------------------------
    "feed_cannot_connect": {"zh": "无法连接到 {address}: {reason}; 任务在运行吗? 它的 TCP 输入端口是这个吗?",
                            "en": "cannot connect to {address}: {reason}; is the task running, and is this "
                                  "its TCP input port?"},
    "feed_done": {"zh": "已发送 {sent:,} 行, 用时 {seconds:.2f} 秒 ({rate:,.0f} 行/秒), 任务已全部读取",
                  "en": "sent {sent:,} rows in {seconds:.2f} s ({rate:,.0f} rows/s); the task read them all"},
    "feed_task_state": {"zh": "任务 {task_id} (输入 {address}) 的状态是 {state}, 不读取数据; {hint}",
                        "en": "task {task_id} (input {address}) is {state}: it reads no data; {hint}"},
    "feed_hint_paused": {"zh": "先继续它: dporch tasks resume {task_id}",
                         "en": "resume it first: dporch tasks resume {task_id}"},
    "feed_hint_start": {"zh": "先启动它: dporch tasks start {task_id}",
                        "en": "start it first: dporch tasks start {task_id}"},
    "feed_hint_reset": {"zh": "查看错误 (dporch tasks show {task_id}), 然后 dporch tasks reset {task_id}",
                        "en": "see why (dporch tasks show {task_id}), then dporch tasks reset {task_id}"},
    "feed_is_api": {"zh": "{address} 是 dporch API 端口, 不是任务的数据端口; {ports}",
                    "en": "{address} is the dporch API, not a task's data port; {ports}"},
    "feed_answered_api": {"zh": "{address} 是 dporch API, 不是任务的数据端口 (它回复: {reply}); "
                                "用 dporch tasks show TASK 查看任务的输入端口",
                          "en": "{address} is the dporch API, not a task's data port (it answered: {reply}); "
                                "dporch tasks show TASK gives a task's input port"},
    "feed_answered_other": {"zh": "{address} 回复了数据 ({reply}), 它不是 dporch 任务的 TCP 输入",
                            "en": "{address} answered with data ({reply}): it is not a dporch task's TCP input"},
    "feed_task_ports": {"zh": "有 TCP 输入的任务: {ports}", "en": "tasks with a TCP input: {ports}"},
    "feed_no_task_ports": {"zh": "没有任务使用 TCP 输入", "en": "no task has a TCP input"},
    "feed_stalled": {"zh": "{address} 的任务没有在读取数据 (已暂停?): 已发送 {sent:,} / {total:,} 行后 "
                           "{seconds:g} 秒没有进展; 连接已重置, 任务尚未读取的行不会处理, 请在它继续读取后重新发送",
                     "en": "the task at {address} is not reading (paused?): sent {sent:,} of {total:,} rows, "
                           "then nothing moved for {seconds:g} s; the connection was reset, so rows the task "
                           "had not read yet are dropped: send them again once it reads"},
    "feed_unread": {"zh": "{address} 的任务在 {seconds:g} 秒内没有读完数据 (已暂停?): 已发送全部 {sent:,} 行, "
                          "它们在任务继续读取时处理",
                    "en": "the task at {address} has not read all rows within {seconds:g} s (paused?): all "
                          "{sent:,} rows were sent and wait in the connection until it reads again"},
    "feed_closed": {"zh": "{address} 的任务在 {sent:,} / {total:,} 行后关闭了连接 (已停止或删除?)",
                    "en": "the task at {address} closed the connection after {sent:,} of {total:,} rows "
                          "(stopped or deleted?)"},
    "feed_not_durable": {"zh": "{address} 没有回答 #stream: 只有持久化输入 (input.durable = true) 支持 --stream",
                         "en": "{address} did not answer #stream: only a durable input (input.durable = true) "
                               "takes --stream"},
    "feed_refused": {"zh": "{address} 拒绝了连接: {reply}", "en": "{address} refused the connection: {reply}"},
    "feed_reconnected": {"zh": "连接中断 {count} 次, 每次从任务已有的位置继续", "en":
                         "the connection broke {count} time(s); each time the feed went on from where the task stood"},
    "feed_interrupted": {"zh": "已中断: 已发送 {sent:,} / {total:,} 行到 {address}",
                         "en": "interrupted: sent {sent:,} of {total:,} rows to {address}"},
    # -- the interactive client ----------------------------------------------------------------------
    "banner": {"zh": "DPLang 任务编排客户端 v1.0", "en": "DPLang task orchestration client v1.0"},
    "connected": {"zh": "✅ 已连接到 {address}", "en": "✅ connected to {address}"},
    "still_connected": {"zh": "仍然连接着 {address}", "en": "still connected to {address}"},
    "not_connected": {"zh": "未连接; 先执行 connect HOST:PORT", "en": "not connected; use connect HOST:PORT"},
    "disconnected": {"zh": "连接已断开; 用 connect HOST:PORT 重新连接",
                     "en": "the connection is closed; use connect HOST:PORT to reconnect"},
    "unknown_command": {"zh": "未知命令: {command} (help 查看命令)", "en": "unknown command: {command} (help lists them)"},
    "usage": {"zh": "用法: {usage}", "en": "usage: {usage}"},
    "interrupted": {"zh": "已中断", "en": "interrupted"},
    "bad_quotes": {"zh": "命令行无法解析: {reason}", "en": "cannot parse the command line: {reason}"},
    "bad_limit": {"zh": "行数应为正整数, 收到 {value!r}; 用法: {usage}",
                  "en": "the row count must be a positive integer, got {value!r}; usage: {usage}"},
    "subscribing": {"zh": "订阅 {task_id} 的实时输出 (Ctrl-C 返回)", "en": "output of {task_id} as it comes (Ctrl-C to return)"},
    "unsubscribed": {"zh": "已停止订阅", "en": "subscription stopped"},
    "bye": {"zh": "👋 再见！", "en": "👋 bye!"},
    "help.connect": {"zh": "连接到服务器", "en": "connect to a server"},
    "help.list": {"zh": "列出所有任务", "en": "list the tasks"},
    "help.show": {"zh": "查看任务详情", "en": "a task's details"},
    "help.create": {"zh": "从配置文件创建任务", "en": "create a task from a config file"},
    "help.start": {"zh": "启动任务", "en": "start a task"},
    "help.pause": {"zh": "暂停任务", "en": "pause a task"},
    "help.resume": {"zh": "继续任务", "en": "resume a task"},
    "help.stop": {"zh": "停止任务", "en": "stop a task"},
    "help.delete": {"zh": "删除任务", "en": "delete a task"},
    "help.push": {"zh": "推送CSV文件数据", "en": "push the rows of a CSV or JSON-lines file"},
    "help.attach": {"zh": "附加文件数据", "en": "stream a file on the server through a task"},
    "help.output": {"zh": "获取输出", "en": "the latest output rows"},
    "help.subscribe": {"zh": "订阅实时输出 (Ctrl-C 返回)", "en": "output rows as they come (Ctrl-C to return)"},
    "help.help": {"zh": "显示帮助", "en": "this help"},
    "help.exit": {"zh": "退出客户端", "en": "leave the client"},
}


def detect_lang(env: Mapping[str, str] | None = None) -> str:
    """``zh`` or ``en``: $DPORCH_LANG, else the locale's language (C/POSIX and unknown: English)."""
    env = os.environ if env is None else env
    chosen = env.get("DPORCH_LANG", "").strip().lower()
    if chosen in LANGS:
        return chosen
    locale = next((env[v] for v in ("LC_ALL", "LC_MESSAGES", "LANG") if env.get(v)), "")
    if env.get("LANGUAGE") and locale.split(".")[0] not in ("", "C", "POSIX"):
        locale = env["LANGUAGE"].split(":")[0]  # GNU: a preference list, honoured unless the locale is C
    return "zh" if locale.lower().startswith("zh") else "en"


class Messages:
    """The catalogue in one language: ``msgs("created", task_id="t1")``."""

    def __init__(self, lang: str):
        if lang not in LANGS:
            raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGS)}")
        self.lang = lang

    def __call__(self, key: str, **fields: Any) -> str:
        return CATALOGUE[key][self.lang].format(**fields)

    def code(self, code: str) -> str:
        """The label of an API error code (the code itself when the catalogue lacks it)."""
        entry = CATALOGUE.get(f"code.{code}")
        return entry[self.lang] if entry else code


_current = Messages(detect_lang())


def use(lang: str | None) -> Messages:
    """Make ``lang`` (None: detect it from the environment) the language of this process."""
    global _current
    _current = Messages(lang or detect_lang())
    return _current


def current() -> Messages:
    return _current


class UserError(Exception):
    """A bad input or an unreachable peer, told in the session's language: the command prints
    it (no traceback) and exits with ``exit_code`` (2: usage or I/O, 1: refused by the task)."""

    def __init__(self, key: str, *, exit_code: int = 2, **fields: Any):
        super().__init__(key)
        self.key = key
        self.fields = fields
        self.exit_code = exit_code

    def render(self, msgs: Messages | None = None) -> str:
        return (msgs or current())(self.key, **self.fields)

    def __str__(self) -> str:
        return self.render()


@contextmanager
def file_errors(path: Path) -> Iterator[None]:
    """Reading ``path`` in the body: a missing, unreadable or non-UTF-8 file becomes a
    :class:`UserError` that names it."""
    try:
        yield
    except FileNotFoundError:
        raise UserError("file_not_found", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise UserError("file_not_utf8", path=str(path), byte=exc.start) from None
    except OSError as exc:
        raise UserError("file_unreadable", path=str(path), reason=exc.strerror or str(exc)) from None
