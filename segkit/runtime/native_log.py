"""LiteRT's native log lines, kept off the console unless asked for, without losing real errors.

LiteRT's C++ code writes straight to the process's file descriptors: ``INFO: Created TensorFlow Lite XNNPACK
delegate for CPU.`` on stderr at every interpreter creation, a page of start-up lines (one on stdout) on the GPU
path, ``DestroyAccelerator`` lines when a GPU environment goes away. Python's logging cannot filter them,
``TF_CPP_MIN_LOG_LEVEL`` does not reach that logger, and the ``ai_edge_litert`` package exposes no log-severity
setter. So segkit redirects fds 1 and 2 to temporary files only around the native calls that log (interpreter
creation, GPU start-up and shut-down), under one process-wide lock, and afterwards writes back what was said:
informational lines only when ``SEGKIT_LOG_LEVEL`` is ``info`` or ``debug``, warnings unless it is ``error``,
errors and anything unrecognised always, each to the stream it came from.

fds are process-wide: while a window is open, another thread's writes to stdout/stderr land in it too. They are
written back afterwards (unrecognised lines count as errors), so nothing is lost, only delayed by the window,
which lasts as long as the native call.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import IO

ENV = "SEGKIT_LOG_LEVEL"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_LOCK = threading.RLock()
# glog-style prefixes (I0000 00:00:...), LiteRT's own (INFO: [file.cc:1]) and harmless start-up chatter that
# LiteRT prints at warning level or without a level (missing vendor plugins, no XDG_RUNTIME_DIR for Dawn, Dawn's
# limit notices, glog's banner).
_INFO = re.compile(r"^(INFO\b|I\d{4} |VERBOSE\b|DEBUG\b)")
_WARNING = re.compile(r"^(WARNING\b|Warning\b|W\d{4} )")
_NOISE = (
    "libLiteRtCompilerPlugin",
    "compiler_plugin.cc",
    "npu_registry",
    "XDG_RUNTIME_DIR",
    "before InitGoogle",
    "artificially reduced",
    "Feedback manager requires a model with a single signature",
)


def threshold() -> int:
    """The least severity shown: ``SEGKIT_LOG_LEVEL`` (debug, info, warning, error), WARNING when unset or unknown."""
    return _LEVELS.get(os.environ.get(ENV, "").strip().lower(), logging.WARNING)


def severity(line: str) -> int:
    """How severe a native log line is: INFO for LiteRT's informational lines and known harmless chatter, WARNING
    for warnings, ERROR for everything else (errors, and lines nobody recognises, so they are never hidden)."""
    if _INFO.match(line) or any(noise in line for noise in _NOISE):
        return logging.INFO
    if _WARNING.match(line):
        return logging.WARNING
    return logging.ERROR


def shown(text: str, least: int | None = None) -> str:
    """The lines of ``text`` at or above ``least`` (default ``threshold()``), blank lines dropped."""
    least = threshold() if least is None else least
    keep = [line for line in text.splitlines() if line.strip() and severity(line) >= least]
    return "".join(line + "\n" for line in keep)


class Captured:
    """What the native code wrote to stdout and stderr inside ``capture``, once the block has ended."""

    def __init__(self) -> None:
        self.stdout = ""
        self.stderr = ""

    @property
    def text(self) -> str:
        """Both streams, stderr first (where LiteRT reports problems)."""
        return self.stderr + self.stdout


def _fflush_all() -> None:
    """Flush Python's and C stdio's buffers, so a redirection splits the output at the right place."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def capture() -> Iterator[Captured]:
    """Redirect the process's fds 1 and 2 (C libraries included) to temporary files for the block.

    The text is in the yielded object afterwards; nothing is written back (see ``quiet`` for that)."""
    captured = Captured()
    with _LOCK, contextlib.ExitStack() as stack:
        files: dict[int, tuple[int, IO[bytes]]] = {}
        _fflush_all()
        for fd in (1, 2):
            try:
                saved = os.dup(fd)
            except OSError:  # no such fd (a daemon, a closed stream): nothing to capture there
                continue
            sink: IO[bytes] = stack.enter_context(tempfile.TemporaryFile())
            os.dup2(sink.fileno(), fd)
            files[fd] = (saved, sink)
        try:
            yield captured
        finally:
            _fflush_all()
            for fd, (saved, sink) in files.items():
                os.dup2(saved, fd)
                os.close(saved)
                sink.seek(0)
                text = sink.read().decode("utf-8", errors="replace")
                if fd == 1:
                    captured.stdout = text
                else:
                    captured.stderr = text


def write_back(captured: Captured, least: int | None = None) -> None:
    """Write the captured lines at or above ``least`` (default ``threshold()``) to the streams they came from."""
    for fd, text in ((1, captured.stdout), (2, captured.stderr)):
        kept = shown(text, least)
        if kept:
            with contextlib.suppress(OSError):
                os.write(fd, kept.encode("utf-8", errors="replace"))


@contextlib.contextmanager
def quiet() -> Iterator[Captured]:
    """``capture`` for the block, then ``write_back`` what the log level shows (also when the block raises)."""
    holder = Captured()
    try:
        with capture() as captured:
            holder = captured
            yield captured
    finally:
        write_back(holder)


# Run by the filter process of ``filter_stderr_until_exit``: loads this file alone (stdlib only, no segkit import).
_FILTER = (
    "import importlib.util, sys; s = importlib.util.spec_from_file_location('native_log', sys.argv[1]); "
    "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); m.filter_lines(int(sys.argv[2]))"
)


def filter_lines(least: int) -> None:
    """Copy stdin to stdout line by line, keeping the lines at or above ``least`` (the filter process's loop)."""
    out = sys.stdout.buffer
    for raw in sys.stdin.buffer:
        line = raw.decode("utf-8", errors="replace")
        if line.strip() and severity(line) >= least:
            out.write(raw)
            out.flush()


def filter_stderr_until_exit() -> None:
    """Filter what is written to fd 2 from now until the process ends, in a small helper process.

    For native destructors that log after Python's last hook (LiteRT's GPU environment, destroyed with the
    process): fd 2 becomes a pipe to a process that writes to the real stderr the lines ``threshold()`` shows.
    Nothing is started when informational lines are to be shown anyway."""
    least = threshold()
    if least <= logging.INFO or not sys.executable:
        return
    _fflush_all()
    try:
        helper = subprocess.Popen(
            [sys.executable, "-S", "-c", _FILTER, os.path.abspath(__file__), str(least)],
            stdin=subprocess.PIPE,
            stdout=2,
        )
    except OSError:
        return
    assert helper.stdin is not None
    with _LOCK:
        os.dup2(helper.stdin.fileno(), 2)
    helper.stdin.close()  # fd 2 keeps the pipe open: the helper sees its end when the process exits
