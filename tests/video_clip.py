"""Test clips made on the fly from a real photo (slow pan and zoom), with an optional sine-tone audio track.

Used by tests/test_video.py and benchmarks/bench_effects.py; nothing large is committed.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image as PILImage


def pan_zoom_frames(photo: np.ndarray, count: int, width: int, height: int) -> list[np.ndarray]:
    """``count`` RGB frames of width x height: a window sliding and zooming over ``photo`` (deterministic)."""
    pil = PILImage.fromarray(photo)
    ph, pw = photo.shape[:2]
    aspect = width / height
    frames = []
    for i in range(count):
        t = i / max(count - 1, 1)
        zoom = 1.0 - 0.25 * t
        cw = min(pw, ph * aspect) * zoom
        ch = cw / aspect
        left = (pw - cw) * (0.5 + 0.4 * np.sin(2 * np.pi * t) / 2)
        top = (ph - ch) * 0.5
        box = (float(left), float(top), float(left + cw), float(top + ch))
        frames.append(np.asarray(pil.resize((width, height), PILImage.Resampling.BILINEAR, box=box)))
    return frames


def write_clip(
    path: Path,
    frames: list[np.ndarray],
    rate: int = 30,
    audio: bool = True,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
    faststart: bool = False,
    pix_fmt: str = "yuv420p",
) -> None:
    """Encodes ``frames`` at ``rate`` fps (x264 ultrafast, CRF 18 by default) plus, if ``audio``, a 440 Hz AAC tone.

    ``faststart`` puts the MP4 index (with the frame count) before the data, so a truncated copy still opens.
    """
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else None) as sink:
        video = sink.add_stream(codec, rate=rate, options=options or {"preset": "ultrafast", "crf": "18"})
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        tone = sink.add_stream("aac", rate=48000) if audio else None
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, rate)
            sink.mux(video.encode(frame))
        sink.mux(video.encode(None))
        if tone is not None:
            seconds = len(frames) / rate
            samples = np.sin(2 * np.pi * 440 * np.arange(int(48000 * seconds)) / 48000).astype(np.float32) * 0.2
            for start in range(0, samples.size, 1024):
                chunk = samples[start : start + 1024][None, :]
                audio_frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
                audio_frame.sample_rate, audio_frame.pts = 48000, start
                sink.mux(tone.encode(audio_frame))
            sink.mux(tone.encode(None))
