"""The server's settings and the ``segkit serve`` argument parser (no web framework imported here)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7000
EFFECTS = ("blur", "replace", "cutout", "recolor", "overlay")
# Each effect's preferred models, best first; the first one the server serves is the effect's default.
PREFERRED_MODELS = {
    "segment": ("selfie_segmenter", "selfie_segmenter_landscape", "deeplab_v3", "deeplabv3", "hair_segmenter"),
    "blur": ("selfie_segmenter", "selfie_segmenter_landscape", "selfie_multiclass_256x256", "deeplab_v3", "deeplabv3"),
    "recolor": ("hair_segmenter", "selfie_multiclass_256x256", "selfie_segmenter"),
    "overlay": ("deeplab_v3", "deeplabv3", "selfie_multiclass_256x256", "hair_segmenter", "selfie_segmenter"),
}
PREFERRED_MODELS["replace"] = PREFERRED_MODELS["cutout"] = PREFERRED_MODELS["live"] = PREFERRED_MODELS["blur"]


@dataclass(frozen=True)
class ServeConfig:
    """Everything the app needs to know; the limits keep one client from taking the server down.

    ``models`` empty means every registered model found locally that the segmenter can run.
    ``workers`` is the number of segmenters (and inference threads) per model: requests beyond ``workers + queue``
    in flight for one model get 503 at once; a request that waits more than ``timeout_s`` for a worker gets 503,
    one whose processing takes longer gets 504.
    """

    models: tuple[str, ...] = ()
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int = 1
    queue: int = 4
    threads: int | None = None
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 24_000_000
    timeout_s: float = 30.0
    max_live: int = 4
    log_level: str = "warning"

    def __post_init__(self) -> None:
        for name, value, low in (
            ("workers", self.workers, 1),
            ("queue", self.queue, 0),
            ("max_upload_bytes", self.max_upload_bytes, 1),
            ("max_pixels", self.max_pixels, 1),
            ("max_live", self.max_live, 0),
            ("port", self.port, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or self.threads < 1):
            raise ValueError(f"threads must be None or an int >= 1, got {self.threads!r}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s!r}")

    @property
    def segmenter_threads(self) -> int:
        """Interpreter threads per segmenter: the cores shared among one model's workers unless set."""
        if self.threads is not None:
            return self.threads
        from segkit.batch import default_workers  # the cores this process may use (CPU affinity counted)

        return max(1, default_workers() // self.workers)


def local_models() -> tuple[str, ...]:
    """Every registered model already on this machine (the default: nothing is downloaded at start-up), except the
    legacy solution models: they are the current selfie models' weights without metadata (``--models`` serves them)."""
    from segkit import models

    return tuple(
        name for name in models.names() if models.info(name).normalization is None and models.cached(name) is not None
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``segkit serve`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="segkit serve",
        description="HTTP API, live WebSocket and a Try-it page at / (OpenAPI docs at /docs).",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface to bind (default: {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default: {DEFAULT_PORT}; 0 = any)")
    parser.add_argument(
        "--models", default=None, metavar="NAMES",
        help="comma-separated registry names or .tflite paths (default: every registered model found locally)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="segmenters per model (default: 1)")
    parser.add_argument(
        "--queue", type=int, default=4, metavar="N",
        help="requests per model allowed to wait for a worker; more get 503 + Retry-After (default: 4)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="interpreter threads per segmenter (default: cores / workers)",
    )  # fmt: skip
    parser.add_argument("--max-upload-mb", type=float, default=20.0, metavar="MB", help="upload limit (default: 20)")
    parser.add_argument(
        "--max-megapixels", type=float, default=24.0, metavar="MP",
        help="decoded image size limit, against decompression bombs (default: 24)",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S", help="per-request timeout (default: 30)")
    parser.add_argument(
        "--max-live", type=int, default=4, metavar="N", help="live camera sessions at once (default: 4)"
    )
    parser.add_argument(
        "--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level (default: warning)",
    )  # fmt: skip
    return parser


def parse_args(argv: Sequence[str]) -> ServeConfig:
    """``argv`` as a ServeConfig; argparse exits with status 2 on a usage error."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    names = tuple(n.strip() for n in args.models.split(",") if n.strip()) if args.models else ()
    try:
        return ServeConfig(
            models=names,
            host=args.host,
            port=args.port,
            workers=args.workers,
            queue=args.queue,
            threads=args.threads,
            max_upload_bytes=max(1, int(args.max_upload_mb * 1024 * 1024)),
            max_pixels=max(1, int(args.max_megapixels * 1_000_000)),
            timeout_s=args.timeout,
            max_live=args.max_live,
            log_level=args.log_level,
        )
    except ValueError as e:
        parser.error(str(e))
