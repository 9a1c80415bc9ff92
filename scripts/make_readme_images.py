"""Regenerates the README's before/after images by running the documented CLI command.

    python scripts/make_readme_images.py            # writes docs/images/blur_before.jpg and blur_after.jpg

The "before" image is astronaut.png from the shared test data scaled to 320 px wide; the "after" image is exactly
what ``segkit blur docs/images/blur_before.jpg --out docs/images/blur_after.jpg`` produces.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
WIDTH = 320


def main() -> int:
    """Writes the before image, then runs the CLI on it; returns the CLI's exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "testdata" / "astronaut.png")
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--model", default="selfie_segmenter")
    args = parser.parse_args()

    args.out_dir.mkdir(parents=True, exist_ok=True)
    before, after = args.out_dir / "blur_before.jpg", args.out_dir / "blur_after.jpg"
    with Image.open(args.source) as im:
        rgb = im.convert("RGB")
        rgb.resize((WIDTH, round(rgb.height * WIDTH / rgb.width)), Image.Resampling.LANCZOS).save(before, quality=90)

    command = [sys.executable, "-m", "segkit", "blur", str(before), "--out", str(after), "--model", args.model]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("SEGKIT_MODEL_DIR", str(REPO.parent / "shared" / "models"))
    print("$ segkit " + " ".join(command[3:]))
    done = subprocess.run(command + ["--overwrite", "--quiet"], env=env, check=False)
    if done.returncode == 0:
        print(f"wrote {before.relative_to(REPO) if before.is_relative_to(REPO) else before} and {after.name}")
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
