"""The benchmark's text report: latency table, segkit's stage breakdown, footprint, and PASS/MISS per target."""

from __future__ import annotations

from typing import Any

import _footprint
from _runners import STAGES, Agreement

SELFIE_MODELS = ("selfie_segmenter", "selfie_segmenter_landscape")


def fmt(v: float | None, spec: str = ".1f") -> str:
    """A number, or n/a for None and NaN."""
    return "n/a" if v is None or v != v else format(v, spec)


def _spread(s: dict[str, float], spec: str = ".1f") -> str:
    """``median [p10-p90]``."""
    return f"{fmt(s['median'], spec)} [{fmt(s['p10'], spec)}-{fmt(s['p90'], spec)}]"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain aligned text table."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def timing_table(rows: list[dict[str, Any]]) -> str:
    """Latency per configuration, with numpy_view() access (the headline) and without; errors listed below."""
    out: list[list[str]] = []
    notes: list[str] = []
    for r in rows:
        s = r["summary"]
        mark = {}
        for lib, err in r["errors"].items():
            notes.append(f"  [{len(notes) + 1}] {r['model']} {r['size']} {r['config']} {lib}: {err}")
            mark[lib] = f"ERROR [{len(notes)}]"
        timed = {lib: bool(r["times"][lib]) for lib in ("segkit", "mediapipe")}
        cell = {lib: _spread(s[lib]["access"]) if timed[lib] else mark.get(lib, "n/a") for lib in timed}
        agree = Agreement(**{k: v for k, v in r["agreement"].items() if k != "ok"}).text() if r["agreement"] else ""
        if r["agreement"] and not r["agreement"]["ok"]:
            agree += "  over floor (GPU: reported only)" if r["accelerator"] == "gpu" else "  BEYOND FLOOR"
        out.append(
            [
                r["model"],
                r["size"],
                r["config"],
                cell["segkit"],
                cell["mediapipe"],
                _spread(s["ratio"], ".2f") + "x" if all(timed.values()) else "n/a",
                f"{fmt(s['segkit']['call']['median'])} / {fmt(s['mediapipe']['call']['median'])}",
                f"{fmt(s['segkit']['cpu']['median'])} / {fmt(s['mediapipe']['cpu']['median'])}",
                agree,
            ]
        )
    headers = [
        "model",
        "size",
        "masks",
        "segkit ms med [p10-p90]",
        "MediaPipe ms med [p10-p90]",
        "ratio sk/MP (pairs)",
        "no-access sk / MP",
        "CPU ms sk / MP",
        "agreement sk vs MP",
    ]
    return table(headers, out) + ("\nerrors:\n" + "\n".join(notes) if notes else "")


def breakdown_table(rows: list[dict[str, Any]]) -> str:
    """segkit's per-stage medians and its overhead beyond the raw interpreter invoke."""
    out = []
    for r in rows:
        s = r.get("summary", {})
        if "stages" not in s:
            continue
        st = s["stages"]
        out.append(
            [r["model"], r["size"], r["config"], fmt(s["total"])]
            + [fmt(st[k]) for k in (*STAGES, "other")]
            + [fmt(s["raw_invoke"]), fmt(s["overhead_ms"]), fmt(s["overhead_pct"], ".0f") + "%"]
        )
    headers = [
        "model",
        "size",
        "masks",
        "total",
        "preprocess",
        "invoke",
        "postprocess",
        "other",
        "raw invoke",
        "overhead",
        "overhead/invoke",
    ]
    return table(headers, out)


def footprint_report(fp: dict[str, Any]) -> str:
    """Installed size, import time and peak RSS, segkit vs MediaPipe."""
    lines = []
    inst = fp["installed"]
    sk, mp = inst["segkit"], inst["mediapipe"]
    lines.append(
        f"installed size (distribution + dependency closure): segkit {sk['total_bytes'] / 1e6:.0f} MB, "
        f"MediaPipe {mp['total_bytes'] / 1e6:.0f} MB ({sk['total_bytes'] / mp['total_bytes']:.2f}x); "
        f"shared {', '.join(inst['shared_dists'])}; exclusive: segkit {sk['exclusive_bytes'] / 1e6:.0f} MB, "
        f"MediaPipe {mp['exclusive_bytes'] / 1e6:.0f} MB"
    )
    for lib in ("segkit", "mediapipe"):
        top = ", ".join(f"{k} {v / 1e6:.1f}" for k, v in list(inst[lib]["dists"].items())[:6])
        lines.append(f"  {lib}: {top} ... (MB)")
    if "import_s" in fp:
        sk_i, mp_i = (_footprint.median(fp["import_s"][k]) for k in ("segkit", "mediapipe"))
        lines.append(
            f"import time (median of {len(fp['import_s']['segkit'])} fresh processes): segkit "
            f"{sk_i * 1e3:.0f} ms, MediaPipe {mp_i * 1e3:.0f} ms ({sk_i / mp_i:.2f}x)"
        )
        rows = []
        for model, res in fp["rss"].items():
            a, b = res["segkit"], res["mediapipe"]
            cells = []
            for key in ("peak_rss_mb", "first_mask_s", "create_s"):
                scale = 1 if key == "peak_rss_mb" else 1e3
                cells.append(" / ".join("ERROR" if "error" in x else f"{x[key] * scale:.0f}" for x in (a, b)))
            ratio = "n/a" if "error" in a or "error" in b else f"{a['peak_rss_mb'] / b['peak_rss_mb']:.2f}x"
            errors = "; ".join(f"{lib}: {x['error']}" for lib, x in res.items() if "error" in x)
            rows.append([model, cells[0], ratio, cells[1], cells[2], errors])
        lines.append(
            "peak RSS of a process that imports, creates a both-masks segmenter and segments one 640x480 "
            "image (library default threads):"
        )
        lines.append(
            table(
                ["model", "peak RSS MB sk / MP", "ratio", "import->mask ms sk / MP", "create ms sk / MP", "errors"],
                rows,
            )
        )
    return "\n".join(lines)


def _check(name: str, limit: float, figures: list[tuple[float, str]], unit: str = "x") -> str:
    """One target line: PASS when every figure is within ``limit``, with the worst one."""
    figures = [f for f in figures if f[0] == f[0]]
    if not figures:
        return f"  n/a   {name}: not measured"
    worst = max(figures)
    verdict = "PASS" if worst[0] <= limit else "MISS"
    shown = f"{worst[0]:.2f}x" if unit == "x" else f"{worst[0]:.0f}%"
    misses = sum(f[0] > limit for f in figures)
    return f"  {verdict}  {name}: worst {shown} ({worst[1]}); {misses}/{len(figures)} rows over"


def targets(rows: list[dict[str, Any]], fp: dict[str, Any], default_setup: bool) -> list[str]:
    """PASS/MISS per target of the issue, with the deciding figure."""

    def ratios(config: str) -> list[tuple[float, str]]:
        return [
            (r["summary"]["ratio"]["median"], f"{r['model']} {r['size']}")
            for r in rows
            if r["config"] == config and r["times"]["mediapipe"]
        ]

    over = [
        (r["summary"]["overhead_pct"], f"{r['model']} {r['size']} {r['config']}")
        for r in rows
        if r["model"] in SELFIE_MODELS and r["size"] == "640x480" and "overhead_pct" in r["summary"]
    ]
    out = [
        _check("both masks: segkit <= 0.5x MediaPipe", 0.5, ratios("both")),
        _check("category mask only: segkit <= 0.5x MediaPipe", 0.5, ratios("cat")),
        _check("confidence masks only: segkit <= 1.0x MediaPipe", 1.0, ratios("conf")),
        _check("overhead beyond raw invoke <= 50% of invoke (selfie models, 640x480)", 50, over, unit="%"),
    ]
    if "rss" in fp:
        rss = [
            (v["segkit"]["peak_rss_mb"] / v["mediapipe"]["peak_rss_mb"], k)
            for k, v in fp["rss"].items()
            if "error" not in v["segkit"] and "error" not in v["mediapipe"]
        ]
        out.append(_check("peak RSS: segkit <= 0.5x MediaPipe", 0.5, rss))
        imp = fp["import_s"]
        out.append(
            _check(
                "import time: segkit <= 0.5x MediaPipe",
                0.5,
                [(_footprint.median(imp["segkit"]) / _footprint.median(imp["mediapipe"]), "import")],
            )
        )
    if not default_setup:
        out.append("  note: the targets are defined for 2 threads, unpinned, CPU; this run differs")
    return out
