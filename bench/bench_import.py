"""Bundle → Blender objects: time to import a real bundle (head, 53 shape keys, textures, camera) in bpy.

Usage: .venv/bin/python bench/bench_import.py [--texture-size 2048] [--repeat 5]
Makes one bundle with the backend CLI from a dev photo, then imports it repeatedly into fresh scenes.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from blender_sandbox import REPO, SANDBOX, bpy, install_addon  # noqa: E402

PHOTO = REPO.parent / "shared" / "data" / "faces_dev" / "images" / "dev_000_london_002_03.jpg"
MODEL = REPO.parent / "shared" / "models" / "ict_facekit" / "ict_face_model.npz"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texture-size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    bundle = SANDBOX / "bundle"
    subprocess.run([sys.executable, "-m", "likeness", "reconstruct", str(PHOTO), "-o", str(bundle),
                    "--texture-size", str(args.texture_size), "--model", str(MODEL)], check=True,
                   capture_output=True)
    api = install_addon()
    times = []
    for _ in range(args.repeat):
        bpy.ops.wm.read_homefile(use_empty=True)
        start = time.perf_counter()
        head, *cameras = api.import_bundle(bundle)
        times.append(time.perf_counter() - start)
    keys = len(head.data.shape_keys.key_blocks) - 1
    print(f"bundle → Blender ({len(head.data.vertices)} vertices, {keys} shape keys, {len(cameras)} camera, "
          f"{args.texture_size}² textures): median {statistics.median(times):.2f} s, max {max(times):.2f} s")


if __name__ == "__main__":
    main()
