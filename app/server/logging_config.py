"""Logging for ``medrec serve``: one JSON object per line, on standard output.

Applied by ``medrec serve`` (in every uvicorn worker process); tests and ``medrec dev`` keep
Python's defaults. The level of the app's loggers comes from ``MEDREC_LOG_LEVEL`` (default
``INFO``). Libraries whose verbose levels print SQL parameters, result rows, WebSocket frames
(tokens in ``connection_init``) or signed HTTP requests are capped (:data:`LIBRARY_LEVELS`), so
``MEDREC_LOG_LEVEL=DEBUG`` makes only the app's own loggers verbose.

A record's structured fields travel in ``extra={"fields": {...}}``; nothing else a caller
attaches to a record is written. Exceptions are written as their types and stack frames without
their messages: database errors quote the values of the row (a name, an MRN) and the SQL.
"""

from __future__ import annotations

import logging
import logging.config
import os
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any, TypeAlias

import orjson

LOG_LEVEL_ENV = "MEDREC_LOG_LEVEL"
DEFAULT_LEVEL = "INFO"

# The most these libraries may say, however verbose the app's own loggers are (a stricter app
# level applies to them too).
LIBRARY_LEVELS: dict[str, str] = {
    # INFO prints every statement with its parameters, DEBUG the rows returned.
    "sqlalchemy": "WARNING",
    "alembic": "WARNING",
    # uvicorn hands its logger to the WebSocket protocol, which logs frames at DEBUG.
    "uvicorn": "INFO",
    "uvicorn.error": "INFO",
    "uvicorn.access": "WARNING",
    "uvicorn.asgi": "WARNING",
    "websockets": "WARNING",
    # DEBUG prints requests with their headers (S3 signatures) and bodies.
    "botocore": "WARNING",
    "aiobotocore": "WARNING",
    "httpx": "WARNING",
    "httpcore": "WARNING",
    "multipart": "WARNING",
    "python_multipart": "WARNING",
}

# Exceptions whose messages are kept: they describe the network, not a row.
_MESSAGE_KEPT: tuple[type[BaseException], ...] = (OSError,)

ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...fields, "exception"?}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry.setdefault(str(key), value)
        if record.exc_info and record.exc_info[1] is not None:
            entry["exception"] = describe_exception(record.exc_info)
        if record.stack_info:
            entry["stack"] = record.stack_info
        # orjson: one line per request is written, several times faster than json.dumps.
        return orjson.dumps(entry, default=str).decode()


def describe_exception(exc_info: ExcInfo) -> str:
    """The chain of exception types with their frames; messages only for network errors."""
    chain: list[BaseException] = []
    current: BaseException | None = exc_info[1]
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    parts: list[str] = []
    for error in reversed(chain):
        parts.extend(traceback.format_tb(error.__traceback__))
        kind = type(error)
        module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
        name = module + kind.__qualname__
        parts.append(f"{name}: {error}\n" if isinstance(error, _MESSAGE_KEPT) else f"{name}\n")
    return "".join(parts).rstrip("\n")


def level_from_environment() -> str:
    return _level(os.environ.get(LOG_LEVEL_ENV, DEFAULT_LEVEL), LOG_LEVEL_ENV)


def _level(name: str, source: str = "level") -> str:
    level = name.strip().upper() or DEFAULT_LEVEL
    if not isinstance(logging.getLevelName(level), int):
        raise ValueError(f"{source}={name!r} is not a logging level")
    return level


def logging_config(level: str | None = None) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dictionary; uvicorn applies it in each worker process."""
    level = _level(level) if level else level_from_environment()
    return {
        "version": 1,
        # Loggers made at import time (medrec.*, before this runs) must keep working.
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stdout": {
                "()": f"{__name__}.json_lines_handler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            name: {"level": _stricter(level, limit), "handlers": [], "propagate": True}
            for name, limit in LIBRARY_LEVELS.items()
        },
    }


def json_lines_handler(stream: IO[str]) -> logging.StreamHandler[IO[str]]:
    """The handler of the JSON lines. They name no source line, thread or process, so records
    stop collecting them (the Logging HOWTO's "Optimization" settings, for the whole process):
    finding the caller walked the stack for every request's log line."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    return logging.StreamHandler(stream)


def _stricter(first: str, second: str) -> str:
    number: int = max(logging.getLevelName(first), logging.getLevelName(second))
    return str(logging.getLevelName(number))


def configure_logging(level: str | None = None) -> None:
    logging.config.dictConfig(logging_config(level))
