"""``segkit serve``: an HTTP API, a live camera WebSocket and a Try-it page, in the ``segkit[serve]`` extra.

``main(argv)`` is the command; ``create_app(config)`` (in ``segkit.serve.app``) builds the ASGI app for embedding
in another server. The web framework is imported only when the server starts, so this package imports without it.
"""

from __future__ import annotations

import math
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from segkit.serve.config import ServeConfig, parse_args

__all__ = ["ServeConfig", "main"]

_EXTRA_HINT = "install the serve extra: pip install 'segkit[serve]'"


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (IPv6 when the host is an IPv6 address); OSError says why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every keep-alive response waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the server until interrupted; the exit status: 0 ok, 1 cannot listen, 2 usage, 3 extra or model missing."""
    try:
        config = parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    try:
        import uvicorn

        from segkit.serve.app import create_app, new_pool
    except ImportError as e:
        print(f"segkit serve: {e}; {_EXTRA_HINT}", file=sys.stderr)
        return 3
    from segkit import models

    unknown = [name for name in config.models if name not in models.names() and not Path(name).is_file()]
    if unknown:
        known = ", ".join(models.names())
        print(
            f"segkit serve: --models: {', '.join(unknown)}: neither a .tflite file nor a known model ({known})",
            file=sys.stderr,
        )
        return 2
    try:
        pool = new_pool(config)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"segkit serve: cannot load the models: {e}", file=sys.stderr)
        return 3
    for name, why in pool.skipped.items():
        print(f"segkit serve: not serving {name}: {why}", file=sys.stderr)
    try:
        sock = _listen(config.host, config.port)
    except OSError as e:
        pool.close()
        print(f"segkit serve: cannot listen on {config.host}:{config.port}: {e}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(
        f"segkit serve: http://{shown}:{port}/ (API docs at /docs; models: {', '.join(pool.models)})",
        file=sys.stderr,
        flush=True,
    )
    app = create_app(config, pool)

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            app.state.server.begin_shutdown()  # requests waiting for a worker get 503 at once
            super().handle_exit(sig, frame)

    server = _Server(
        uvicorn.Config(
            app,
            log_level=config.log_level,
            ws_max_size=config.max_upload_bytes + 65536,
            # Every request ends by itself within --timeout (200, 408 or 504), so running ones are let finish
            # rather than cancelled into bare 500s; the waiting ones are answered 503 at the signal.
            timeout_graceful_shutdown=max(1, math.ceil(config.timeout_s)),
        )
    )
    # uvicorn re-raises the stop signal once it is done: SIGTERM would then kill the process (status 143) where
    # SIGINT ends it as KeyboardInterrupt (status 0); a stop by SIGTERM is as normal as Ctrl-C.
    main_thread = threading.current_thread() is threading.main_thread()  # only it may set signal handlers
    previous = signal.signal(signal.SIGTERM, lambda *_: None) if main_thread else None
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        sock.close()
    return 0
