"""Regenerates the README's before/after images.

    python scripts/make_readme_images.py     # writes docs/images/blur_{before,after}.jpg and edge_{before,after}.png

- ``blur_before.jpg`` is astronaut.png from the shared test data scaled to 320 px wide; ``blur_after.jpg`` is exactly
  what ``segkit blur docs/images/blur_before.jpg --out docs/images/blur_after.jpg`` produces (the real CLI).
- ``edge_before.png`` / ``edge_after.png``: a crop of the hair edge of the full-size photo put on a dark blue
  background by ``effects.replace_background`` with ``estimate_colors=False`` (the image's own edge colors, which
  mix in the light backdrop) and with the default (estimated subject colors), shown at 3x, nearest-neighbour.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
WIDTH = 320
EDGE_CROP = (245, 30, 345, 130)  # left, top, right, bottom in the 512x512 photo: the right side of the hair
EDGE_BACKGROUND = "#1e3a8a"


def blur_pair(source: Path, out_dir: Path, model: str) -> int:
    """Writes the before image, then runs the CLI on it; returns the CLI's exit status."""
    before, after = out_dir / "blur_before.jpg", out_dir / "blur_after.jpg"
    with Image.open(source) as im:
        rgb = im.convert("RGB")
        rgb.resize((WIDTH, round(rgb.height * WIDTH / rgb.width)), Image.Resampling.LANCZOS).save(before, quality=90)
    command = [sys.executable, "-m", "segkit", "blur", str(before), "--out", str(after), "--model", model]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("SEGKIT_MODEL_DIR", str(REPO.parent / "shared" / "models"))
    print("$ segkit " + " ".join(command[3:]))
    return subprocess.run([*command, "--overwrite", "--quiet"], env=env, check=False).returncode


def edge_pair(source: Path, out_dir: Path, model: str) -> None:
    """The hair-edge crop with the raw model mask and with the default refinement."""
    from segkit import BaseOptions, ImageSegmenter, ImageSegmenterOptions, effects, models

    with Image.open(source) as im:
        rgb = np.ascontiguousarray(np.asarray(im.convert("RGB")))
    options = ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=str(models.path(model))))
    with ImageSegmenter.create_from_options(options) as segmenter:
        result = segmenter.segment(rgb)
    left, top, right, bottom = EDGE_CROP
    for name, estimate in (("edge_before.png", False), ("edge_after.png", True)):
        out = effects.replace_background(rgb, result, EDGE_BACKGROUND, estimate_colors=estimate)[top:bottom, left:right]
        crop = Image.fromarray(out).resize(((right - left) * 3, (bottom - top) * 3), Image.Resampling.NEAREST)
        crop.save(out_dir / name, optimize=True)
    print(f"wrote edge_before.png and edge_after.png (replace_background, estimate_colors off / on) in {out_dir}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "testdata" / "astronaut.png")
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--model", default="selfie_segmenter")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SEGKIT_MODEL_DIR", str(REPO.parent / "shared" / "models"))
    edge_pair(args.source, args.out_dir, args.model)
    return blur_pair(args.source, args.out_dir, args.model)


if __name__ == "__main__":
    raise SystemExit(main())
