"""Fuzz segkit with mutated models, image files and arrays, each case in a child process under limits.

    python scripts/fuzz.py --kind models --count 20000 --log fuzz-models.jsonl
    python scripts/fuzz.py --kind images --count 5000 --log fuzz-images.jsonl
    python scripts/fuzz.py --report fuzz-models.jsonl fuzz-images.jsonl

Case `i` of a run is generated from (`--seed`, kind, i) alone, so a run can be split (`--start`, `--count`) or
resumed: cases already in the JSON-lines log are skipped. A pool of worker processes (`--workers`) runs the cases,
each worker under an address-space cap (`--memory-mb`, RLIMIT_AS) and a per-case timeout (`--timeout`); a worker
that dies (signal) or hangs is recorded and replaced. Each case records its outcome (``ok``, the exception type,
``signal:N``, ``timeout``), its message, its time and its peak RSS (the kernel's high-water mark, reset per case).

Kinds:
  models: every model in the model folder (`--models`, default `$SEGKIT_MODEL_DIR`), mutated by truncation, bit
    flips, int32 writes on flatbuffer fields (tensor shapes, types and buffers, operator indices and options,
    vtable slots, vector lengths), random bytes, and crafted metadata (zip bombs, lying zips, label floods); the
    case describes the model (as `segkit info` does), creates a segmenter from the bytes and segments a small image.
  images: PNG/JPEG/GIF/BMP/TIFF/WebP files (and crafted ones: 16-bit, float, CMYK, palette, huge headers)
    mutated the same ways; the case decodes the file with `Image.create_from_file` and segments it.
  arrays: random shapes (extremes included), dtypes, formats, strides and values passed to `segment`.
The exit status is 1 when any case ended with a signal, a timeout, a memory blow-up or an empty message.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("models", "images", "arrays")
BLOWUP_MB = 1536  # a case whose peak RSS passes this counts as a memory blow-up
INTERESTING = (-1, 0, 1, 2, 3, 4, 7, 8, 16, 255, 256, 1024, 65535, 65536, 1 << 20, 0x7FFFFFFF, -(1 << 31), -2)
ERRORS_OK = ("ValueError", "RuntimeError", "TypeError", "FileNotFoundError", "NotImplementedError")


# ----------------------------------------------------------------------------------------------- mutants: models


def _field_positions(model: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(position, size) of the flatbuffer fields worth overwriting: every present scalar, offset and vtable slot
    of the model's tables and the elements of its index and shape vectors; then those of its TFLITE_METADATA
    tables (the metadata is a flatbuffer inside a buffer)."""
    from segkit.metadata.flatbuf import U32, Reader, Table

    r = Reader(model, "fuzz")
    out: list[tuple[int, int]] = []

    def fields(t: Table, limit: int = 16, base: int = 0) -> None:
        out.append((base + t.pos, 4))  # the vtable offset
        for f in range((t.vsize - 4) // 2):
            out.append((base + t.vtable + 4 + 2 * f, 2))
            p = t._field(f, 1)
            if p is not None and f < limit:
                out.append((base + p - p % 4, 4) if p % 4 == 0 else (base + p, 1))

    def vector(t: Table, f: int) -> None:
        v = t.vector(f, 4)
        if v is not None:
            out.append((v[0] - 4, 4))
            out.extend((v[0] + 4 * k, 4) for k in range(min(v[1], 64)))

    root = r.root("Model")
    fields(root)
    for oc in root.tables(1, "oc"):
        fields(oc)
    for b in root.tables(4, "b"):
        fields(b)
        v = b.vector(0, 1)
        if v is not None:
            out.append((v[0] - 4, 4))
            if v[1] >= 4 and v[1] <= 64:
                out.extend((v[0] + 4 * k, 4) for k in range(v[1] // 4))
    for sg in root.tables(2, "sg"):
        fields(sg)
        vector(sg, 1)
        vector(sg, 2)
        for t in sg.tables(0, "t"):
            fields(t)
            vector(t, 0)
            q = t.table(4, "q")
            if q is not None:
                fields(q)
        for op in sg.tables(3, "op"):
            fields(op)
            vector(op, 1)
            vector(op, 2)
            o = op.table(4, "o")
            if o is not None:
                fields(o)
            c = op.vector(5, 1)
            if c is not None:
                out.extend((c[0] + 4 * k, 4) for k in range(c[1] // 4))
    structure = [(p, s) for p, s in out if p >= 0 and p + s <= len(model)]
    out.clear()
    buffers = root.tables(4, "b")
    for entry in root.tables(6, "md"):
        data = buffers[int(entry.scalar(1, U32))].vector(0, 1) if entry.string(0) == "TFLITE_METADATA" else None
        if data is not None:
            _metadata_fields(Reader(model[data[0] : data[0] + data[1]], "fuzz"), data[0], fields)
    return structure, [(p, s) for p, s in out if p >= 0 and p + s <= len(model)]


def _metadata_fields(r: Any, base: int, fields: Any) -> None:
    """Feed `fields` every table of a ModelMetadata flatbuffer that starts at byte `base` of the model."""
    root = r.root("md")
    fields(root, base=base)
    for sg in root.tables(3, "sg"):
        fields(sg, base=base)
        for custom in sg.tables(9, "c"):
            fields(custom, base=base)
        for tensor in sg.tables(2, "i") + sg.tables(3, "o"):
            fields(tensor, base=base)
            for f in tensor.tables(6, "f"):
                fields(f, base=base)
            for unit in tensor.tables(4, "u"):
                fields(unit, base=base)
                options = unit.table(1, "n")
                if options is not None:
                    fields(options, base=base)
            content = tensor.table(3, "c")
            if content is not None:
                fields(content, base=base)


def _zip_start(model: bytes) -> int | None:
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as zf:
            return min((i.header_offset for i in zf.infolist()), default=None)
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def _crafted_zip(rng: random.Random, model: bytes) -> bytes:
    """The model with its appended zip replaced by a hostile one."""
    start = _zip_start(model)
    base = model if start is None else model[:start]
    out = io.BytesIO()
    choice = rng.randrange(6)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        if choice == 0:  # a deflate bomb named like the label file
            zf.writestr("labels.txt", b"\n" * rng.choice((17 << 20, 64 << 20)))
        elif choice == 1:  # a label flood
            zf.writestr("labels.txt", "\n".join(f"l{k}" for k in range(rng.choice((300, 100_000, 2_000_000)))))
        elif choice == 2:  # many members
            for k in range(rng.choice((10, 1000))):
                zf.writestr(f"m{k}.txt", b"x" * 1000)
            zf.writestr("labels.txt", b"a\n")
        elif choice == 3:  # not UTF-8
            zf.writestr("labels.txt", bytes(rng.randrange(256) for _ in range(64)))
        elif choice == 4:  # empty
            zf.writestr("labels.txt", b"")
        else:
            for name in ("labels.txt", "labelmap.txt"):
                zf.writestr(name, b"selfie\n")
    data = bytearray(out.getvalue())
    if rng.random() < 0.3 and len(data) > 40:  # a lying header
        pos = rng.randrange(len(data) - 4)
        struct.pack_into("<I", data, pos, rng.choice((0xFFFFFFFF, 1 << 30, 0)))
    return base + bytes(data)


def mutate_model(
    rng: random.Random, model: bytes, positions: tuple[list[tuple[int, int]], list[tuple[int, int]]]
) -> tuple[bytes, str]:
    """One mutant of `model` and a short description of the mutation (`positions`: `_field_positions`)."""
    data = bytearray(model)
    how = rng.choices(("int32", "metadata", "bitflip", "truncate", "bytes", "zip"), (50, 8, 18, 7, 10, 7))[0]
    targets = positions[1] if how == "metadata" else positions[0]
    if how in ("int32", "metadata") and targets:
        pos, size = rng.choice(targets)
        if size == 4:
            old = struct.unpack_from("<i", data, pos)[0]
            value = rng.choice((*INTERESTING, old + 1, old - 1, old * 2, old + rng.randint(-64, 64)))
            value = max(-(1 << 31), min((1 << 31) - 1, value))
            struct.pack_into("<i", data, pos, value)
        elif size == 2:
            value = rng.choice((0, 1, 2, 4, 0xFFFF, rng.randrange(0x10000)))
            struct.pack_into("<H", data, pos, value)
        else:
            value = rng.randrange(256)
            data[pos] = value
        return bytes(data), f"{how}: int{8 * size} {value} at {pos}"
    if how == "bitflip":
        flips = [rng.randrange(8 * len(data)) for _ in range(rng.randint(1, 8))]
        for b in flips:
            data[b // 8] ^= 1 << (b % 8)
        return bytes(data), f"bitflip {flips}"
    if how == "truncate":
        cut = rng.randrange(len(data))
        return bytes(data[:cut]), f"truncate {cut}"
    if how == "zip":
        return _crafted_zip(rng, model), "crafted zip"
    pos, n = rng.randrange(len(data)), rng.randint(1, 16)
    data[pos : pos + n] = bytes(rng.randrange(256) for _ in range(n))
    return bytes(data), f"bytes {n} at {pos}"


# ----------------------------------------------------------------------------------------------- mutants: images


def seed_images() -> list[tuple[str, bytes]]:
    """(suffix, bytes) of small seed images in every format Pillow writes here, and awkward modes."""
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    rgb = PILImage.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    seeds: list[tuple[str, bytes]] = []

    def save(img: Any, fmt: str, suffix: str, **kw: Any) -> None:
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        seeds.append((suffix, buf.getvalue()))

    save(rgb, "PNG", ".png")
    save(rgb, "JPEG", ".jpg")
    save(rgb.convert("P"), "GIF", ".gif")
    save(rgb, "BMP", ".bmp")
    save(rgb, "TIFF", ".tif")
    save(rgb, "WEBP", ".webp")
    save(rgb.convert("RGBA"), "PNG", ".png")
    save(rgb.convert("L"), "PNG", ".png")
    save(rgb.convert("CMYK"), "JPEG", ".jpg")
    save(PILImage.fromarray(rng.integers(0, 65536, (24, 32), dtype=np.uint16)), "PNG", ".png")
    save(PILImage.fromarray(rng.random((24, 32), dtype=np.float32)), "TIFF", ".tif")
    save(PILImage.fromarray(rng.integers(0, 1 << 30, (24, 32), dtype=np.int32)), "TIFF", ".tif")
    p = rgb.convert("P")
    p.info["transparency"] = 0
    save(p, "PNG", ".png", transparency=0)
    return seeds


def mutate_image(rng: random.Random, seeds: list[tuple[str, bytes]]) -> tuple[str, bytes, str]:
    """(suffix, bytes, description) of one mutated image file."""
    suffix, original = rng.choice(seeds)
    if rng.random() < 0.1:
        suffix = rng.choice((".png", ".jpg", ".dds", ".tif"))  # a lying extension
    data = bytearray(original)
    how = rng.choices(("header", "bitflip", "truncate", "bytes", "none"), (40, 25, 15, 15, 5))[0]
    if how == "header":
        pos = rng.randrange(min(len(data) - 4, 64))
        value = rng.choice((0, 1, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF, 100_000, rng.randrange(1 << 32)))
        struct.pack_into(rng.choice(("<I", ">I")), data, pos, value)
        desc = f"header {value} at {pos}"
    elif how == "bitflip":
        flips = [rng.randrange(8 * len(data)) for _ in range(rng.randint(1, 8))]
        for b in flips:
            data[b // 8] ^= 1 << (b % 8)
        desc = f"bitflip {flips}"
    elif how == "truncate":
        cut = rng.randrange(len(data))
        data = data[:cut]
        desc = f"truncate {cut}"
    elif how == "bytes":
        pos, n = rng.randrange(len(data)), rng.randint(1, 16)
        data[pos : pos + n] = bytes(rng.randrange(256) for _ in range(n))
        desc = f"bytes {n} at {pos}"
    else:
        desc = "unchanged"
    return suffix, bytes(data), f"{suffix} {desc}"


def random_array(rng: random.Random) -> tuple[Any, int | None, str]:
    """(array, format or None for inference, description) of one random array input."""
    from segkit.image import ImageFormat

    dtype: type[np.generic] = rng.choice((np.uint8, np.uint8, np.uint16, np.float32, np.float64, np.int32, np.bool_))
    shape_kind = rng.randrange(5)
    if shape_kind == 0:
        h, w = 1, rng.choice((1, 2, 1000, 200_000))
    elif shape_kind == 1:
        h, w = rng.choice((1, 2, 1000, 200_000)), 1
    else:
        h, w = rng.randint(1, 300), rng.randint(1, 300)
    if rng.random() < 0.05:
        h = rng.choice((0, 5000))
    w = max(1, min(w, 4_000_000 // max(h, 1)))  # extremes in shape, not in size: the harness stays within its cap
    c = rng.choice((None, 1, 2, 3, 4, 5))
    shape = (h, w) if c is None else (h, w, c)
    nprng = np.random.default_rng(rng.randrange(1 << 32))
    if np.issubdtype(dtype, np.floating):
        a = nprng.standard_normal(shape).astype(dtype)
        if rng.random() < 0.3:
            a.flat[:: max(1, a.size // 7)] = rng.choice((np.nan, np.inf, -np.inf, 1e38))
    elif dtype == np.bool_:
        a = nprng.integers(0, 2, shape).astype(bool)
    else:
        a = nprng.integers(0, int(np.iinfo(dtype).max), shape, dtype=dtype, endpoint=True)  # type: ignore[type-var]
    if rng.random() < 0.3 and a.ndim == 3:
        a = a[:, ::-1]
    if rng.random() < 0.2:
        a = np.asfortranarray(a)
    fmt = None if rng.random() < 0.5 else int(rng.choice(list(ImageFormat)))
    return a, fmt, f"{a.dtype} {a.shape} format {fmt}"


# ----------------------------------------------------------------------------------------------- the worker


class Worker:
    """A child process's side: builds and runs cases by number, reporting one JSON line per case."""

    def __init__(self, kind: str, seed: int, model_dir: Path) -> None:
        self.kind, self.seed = kind, seed
        self.models = sorted(p for p in model_dir.rglob("*.tflite") if p.is_file())
        if not self.models:
            raise SystemExit(f"fuzz: no .tflite models under {model_dir}")
        self._bytes: dict[Path, bytes] = {}
        self._positions: dict[Path, tuple[list[tuple[int, int]], list[tuple[int, int]]]] = {}
        self._seeds: list[tuple[str, bytes]] | None = None
        self._segmenter: Any = None
        self.description = ""
        self.tmp = Path(tempfile.mkdtemp(prefix="segkit-fuzz-"))

    def segmenter(self) -> Any:
        """The image/array kinds' segmenter (selfie model, both masks), created once per worker."""
        if self._segmenter is None:
            import segkit

            path = next((p for p in self.models if p.name == "selfie_segmenter.tflite"), self.models[0])
            options = segkit.ImageSegmenterOptions(
                base_options=segkit.BaseOptions(model_asset_path=str(path)), output_category_mask=True, num_threads=1
            )
            self._segmenter = segkit.ImageSegmenter.create_from_options(options)
        return self._segmenter

    def run(self, case: int) -> str:
        """Run case `case`; returns a description (the outcome is whatever it raises, or ok)."""
        rng = random.Random(f"{self.seed}:{self.kind}:{case}")
        if self.kind == "models":
            return self._model_case(rng)
        if self.kind == "images":
            return self._image_case(rng, case)
        return self._array_case(rng)

    def _model_case(self, rng: random.Random) -> str:
        import segkit
        from segkit.metadata import describe, read_model_info

        path = rng.choice(self.models)
        if path not in self._bytes:
            self._bytes[path] = path.read_bytes()
            self._positions[path] = _field_positions(self._bytes[path])
        data, desc = mutate_model(rng, self._bytes[path], self._positions[path])
        options = segkit.ImageSegmenterOptions(
            base_options=segkit.BaseOptions(model_asset_buffer=data),
            output_category_mask=True,
            num_threads=1,
            normalization=(127.5, 127.5) if rng.random() < 0.5 else None,
        )
        image = np.random.default_rng(rng.randrange(1 << 32)).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        self.description = f"{path.name}: {desc}"
        with contextlib.suppress(ValueError):  # the segmenter below raises the same problem in MediaPipe's words
            describe(read_model_info(data))  # what `segkit info` prints must stay bounded too
        with segkit.ImageSegmenter.create_from_options(options) as s:
            s.segment(image)
        return self.description

    def _image_case(self, rng: random.Random, case: int) -> str:
        import segkit

        if self._seeds is None:
            self._seeds = seed_images()
        suffix, data, desc = mutate_image(rng, self._seeds)
        self.description = desc
        file = self.tmp / f"case{case}{suffix}"
        file.write_bytes(data)
        try:
            image = segkit.Image.create_from_file(file)
            self.segmenter().segment(image)
        finally:
            file.unlink(missing_ok=True)
        return desc

    def _array_case(self, rng: random.Random) -> str:
        import segkit

        a, fmt, desc = random_array(rng)
        self.description = desc
        image = segkit.Image(fmt, a) if fmt is not None else a
        self.segmenter().segment(image)
        return desc


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_main(kind: str, seed: int, model_dir: Path, memory_mb: int) -> None:
    """Read case numbers from stdin, answer one JSON line each on stdout (the real stdout: fd 3 of a dup)."""
    if memory_mb:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # LiteRT's and Pillow's chatter does not mix with the answers
    import logging

    logging.disable(logging.CRITICAL)
    worker = Worker(kind, seed, model_dir)
    for line in sys.stdin:
        case = int(line)
        worker.description = ""
        _reset_peak()
        start = time.perf_counter()
        try:
            worker.run(case)
            outcome, message = "ok", ""
        except Exception as e:  # every exception is an outcome to record, not a failure of the harness
            outcome, message = type(e).__name__, str(e)
        record = {
            "case": case,
            "outcome": outcome,
            "message": message[:300],
            "empty": outcome != "ok" and not message.strip(),
            "seconds": round(time.perf_counter() - start, 4),
            "rss_mb": round(_peak_mb(), 1),
            "input": worker.description[:200],
        }
        out.write(json.dumps(record) + "\n")


# ----------------------------------------------------------------------------------------------- the parent


@dataclass
class Child:
    proc: subprocess.Popen[str]
    case: int | None = None
    started: float = 0.0


def _spawn(args: argparse.Namespace) -> Child:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--kind", args.kind, "--seed", str(args.seed)]
    cmd += ["--models", str(args.models), "--memory-mb", str(args.memory_mb)]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
    )
    return Child(proc)


def _done_cases(log: Path, kind: str, seed: int) -> set[int]:
    done: set[int] = set()
    if log.is_file():
        for line in log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interrupted run
            if rec.get("kind") == kind and rec.get("seed") == seed:
                done.add(int(rec["case"]))
    return done


def run(args: argparse.Namespace) -> int:
    """Run the cases not yet in the log with a pool of workers; print the table."""
    log = Path(args.log)
    done = _done_cases(log, args.kind, args.seed)
    todo: Iterator[int] = (c for c in range(args.start, args.start + args.count) if c not in done)
    children = [_spawn(args) for _ in range(args.workers)]
    remaining = True
    with log.open("a") as fh:

        def record(rec: dict[str, Any]) -> None:
            rec.update(kind=args.kind, seed=args.seed)
            fh.write(json.dumps(rec) + "\n")
            fh.flush()

        try:
            while True:
                for k, child in enumerate(children):
                    if child.case is None and remaining:
                        case = next(todo, None)
                        if case is None:
                            remaining = False
                            continue
                        assert child.proc.stdin is not None
                        try:
                            child.proc.stdin.write(f"{case}\n")
                            child.proc.stdin.flush()
                        except BrokenPipeError:
                            children[k] = child = _spawn(args)
                            assert child.proc.stdin is not None
                            child.proc.stdin.write(f"{case}\n")
                            child.proc.stdin.flush()
                        child.case, child.started = case, time.monotonic()
                busy = [c for c in children if c.case is not None]
                if not busy:
                    break
                streams = {c.proc.stdout: c for c in busy if c.proc.stdout is not None}
                ready, _, _ = select.select(list(streams), [], [], 0.2)
                for stream in ready:
                    child = streams[stream]
                    line = stream.readline()
                    if line:
                        record(json.loads(line))
                        child.case = None
                        continue
                    code = child.proc.wait()
                    outcome = f"signal:{-code}" if code < 0 else f"exit:{code}"
                    record({"case": child.case, "outcome": outcome, "message": "", "empty": False, "seconds": round(
                        time.monotonic() - child.started, 3), "rss_mb": 0.0, "input": ""})  # fmt: skip
                    children[children.index(child)] = _spawn(args)
                for k, child in enumerate(children):
                    if child.case is not None and time.monotonic() - child.started > args.timeout:
                        child.proc.kill()
                        child.proc.wait()
                        record({"case": child.case, "outcome": "timeout", "message": "", "empty": False,
                                "seconds": args.timeout, "rss_mb": 0.0, "input": ""})  # fmt: skip
                        children[k] = _spawn(args)
        finally:
            for child in children:
                child.proc.kill()
                child.proc.wait()
    return report([log], kinds=(args.kind,), seed=args.seed)


def report(logs: list[Path], kinds: tuple[str, ...] = KINDS, seed: int | None = None) -> int:
    """Print outcomes by kind and type (count, worst time, max peak RSS); 1 when any case is a failure."""
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for log in logs:
        for line in log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec["kind"] in kinds and (seed is None or rec["seed"] == seed):
                rows.setdefault((rec["kind"], rec["outcome"]), []).append(rec)
    bad = 0
    print("| kind | outcome | cases | worst s | max peak RSS MB | empty messages |\n|---|---|---:|---:|---:|---:|")
    for (kind, outcome), recs in sorted(rows.items(), key=lambda kv: (kv[0][0], -len(kv[1]))):
        empty = sum(bool(r["empty"]) for r in recs)
        worst = max(r["seconds"] for r in recs)
        peak = max(r["rss_mb"] for r in recs)
        print(f"| {kind} | {outcome} | {len(recs)} | {worst:.2f} | {peak:.0f} | {empty} |")
        failure = outcome.startswith(("signal", "exit", "timeout")) or outcome == "MemoryError"
        bad += len(recs) if failure else empty + sum(r["rss_mb"] > BLOWUP_MB for r in recs)
    total = sum(len(v) for v in rows.values())
    print(f"\n{total} cases; {bad} failures (signals, exits, timeouts, memory blow-ups over {BLOWUP_MB} MB, "
          "empty messages)")  # fmt: skip
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", choices=KINDS, default="models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0, help="first case number")
    p.add_argument("--count", type=int, default=1000, help="number of cases")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per case before the worker is killed")
    p.add_argument("--memory-mb", type=int, default=3072, help="address-space cap per worker (0: none)")
    p.add_argument("--models", type=Path, default=Path(os.environ.get("SEGKIT_MODEL_DIR", "../shared/models")))
    p.add_argument("--log", default="fuzz.jsonl", help="JSON-lines log, appended to and resumed from")
    p.add_argument("--report", nargs="+", type=Path, metavar="LOG", help="only print the table of these logs")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args.kind, args.seed, args.models, args.memory_mb)
        return 0
    if args.report:
        return report(args.report)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
