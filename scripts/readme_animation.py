"""Make the README's animation strip: a real GRID clip tracked by `likeness track`, retargeted onto the head
reconstructed from the public-domain astronaut portrait (so the picture holds no pixels of the clip).

Usage: .venv/bin/python scripts/readme_animation.py [--clip ../shared/data/video_dev/bbaf2n.mpg]
                                                    [-o docs/images/tracked_sequence.jpg]
Per shown frame: the tracked expression weights and head rotation on the astronaut's head, rendered by the
backend's own renderer (`likeness.appearance.relight.render_lit`) under a light from the front left.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from shared_paths import SHARED, find_ict_model  # noqa: E402

from likeness.model.camera import Camera  # noqa: E402
from likeness.service.cli import astronaut_photo  # noqa: E402
from likeness.model.geometry import head_rotation  # noqa: E402
from likeness.appearance.light import directional  # noqa: E402
from likeness.service.pipeline import Engine, ReconstructRequest  # noqa: E402
from likeness.appearance.relight import bundle_head, render_lit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SHARED / "data" / "video_dev" / "bbaf2n.mpg")
    parser.add_argument("-o", "--output", type=Path, default=REPO / "docs" / "images" / "tracked_sequence.jpg")
    parser.add_argument("--frames", type=int, default=6, help="how many frames to show")
    args = parser.parse_args()
    model_path = str(find_ict_model())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "likeness", "track", str(args.clip), "-o", str(tmp / "track"),
                        "--no-head", "--model", model_path], check=True)
        track = json.loads((tmp / "track" / "track.json").read_text())
        Engine().reconstruct(ReconstructRequest([str(astronaut_photo())], str(tmp / "astro"), 1024, model_path))
        model, _, textures = bundle_head(tmp / "astro")
    frames = [f for f in track["frames"] if f["tracked"]]
    jaw = np.array([f["expression"][track["expressions"].index("jawOpen")] for f in frames])
    # spread the shown frames over the clip, always including the widest-open mouth
    picks = sorted(set(np.linspace(0, len(frames) - 1, args.frames - 1).astype(int)) | {int(jaw.argmax())})
    camera = Camera(1400.0, (250.0, 300.0), (500, 600))
    light = directional([0.5, 0.4, 1.0], strength=0.8, ambient=0.25)
    panels = []
    for i in picks:
        frame = frames[i]
        weights = np.array([frame["expression"][track["expressions"].index(n)] for n in model.expression_names])
        pose = frame["pose"]
        rotation = head_rotation(pose["yaw_deg"], pose["pitch_deg"], pose["roll_deg"])
        verts = model.vertices(expression=weights) @ rotation.T + np.array([0.0, 0.0, -0.75])
        image, _ = render_lit(model, verts, camera, textures, light, None, 600)
        panels.append(image)
        print(f"frame {frame['frame']}: jawOpen {weights[model.expression_names.index('jawOpen')]:.2f}, "
              f"yaw {pose['yaw_deg']:.1f}°")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    strip = Image.fromarray(np.concatenate(panels, axis=1))
    strip.resize((strip.width * 3 // 5, strip.height * 3 // 5), Image.LANCZOS).save(args.output, quality=88)
    print(args.output, "frames", [frames[i]["frame"] for i in picks])


if __name__ == "__main__":
    main()
