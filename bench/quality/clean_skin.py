"""Clean skin (docs/quality.md, "Clean skin"): how much of the skin albedo came from hair, clothing or background.

Usage: .venv/bin/python bench/quality/clean_skin.py [--size 512] [--limit N]
Fits each of the 65 dev photos in ../shared/data/faces_dev alone, labels it (likeness.capture.segment) and measures,
with likeness.appearance.cleanskin, the share of the skin albedo's seen texels whose colour came mostly from pixels
labelled hair, clothing, background or the mouth's opening (teeth, tongue, the mouth's inside): with the skin masks
(as the pipeline bakes now), with the masks as they were before the opening was labelled (``openings_kept``), and
without masks (``before``).
Also times the segmentation per photo. Prints a table and writes bench/results/clean_skin.json. About a minute on 2
cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dev_photos import DEV, load_items
from likeness.model.camera import Camera
from likeness.appearance.cleanskin import nonskin_share
from likeness.capture.images import load_photo
from likeness.capture import segment
from likeness.capture.segment import PersonSegmenter, segment_photo
from likeness.appearance.texture import PhotoView
from photo_fits import Fitter, table, write_results

#: A photo's albedo is "free of non-skin" when under this share of its seen texels is non-skin.
FREE_BELOW = 0.005


def measure(item: dict, fitter: Fitter, segmenter: PersonSegmenter, size: int) -> dict:
    photo = load_photo(DEV / item["file"])
    result, found = fitter.engine.analyse([photo], fitter.path)
    start = time.perf_counter()
    seg = segment_photo(photo.rgb, found[0].points_px, segmenter)
    seg_ms = 1000 * (time.perf_counter() - start)
    fit, model = result.photos[0], fitter.model
    verts = model.vertices(result.identity) + np.tensordot(fit.expression, model.expression_basis, axes=1)
    view = PhotoView.build(model, photo.rgb, Camera(photo.focal_px, photo.principal_point, photo.size),
                           verts @ fit.rotation.T + fit.translation)
    before = nonskin_share(model, [view], [seg], size, masked=False)
    after = nonskin_share(model, [view], [seg], size, masked=True)
    rings, segment.OPENINGS = segment.OPENINGS, ()  # the skin weights as they were before openings were labelled
    try:
        old = segment_photo(photo.rgb, found[0].points_px, segmenter)
    finally:
        segment.OPENINGS = rings
    kept = nonskin_share(model, [view], [seg], size, masked=True, skins=[old.skin])
    return {"file": item["file"], "source": item["source"], "segment_ms": seg_ms, "person": seg.person_source,
            "labels": seg.fractions(), "before": before, "openings_kept": kept, "after": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="texture size of the probe bakes")
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (0: all)")
    args = parser.parse_args()
    items = load_items()[:args.limit or None]
    fitter, segmenter = Fitter(), PersonSegmenter()
    rows = [measure(item, fitter, segmenter, args.size) for item in items]
    ms = np.array([r["segment_ms"] for r in rows[1:] or rows])  # the first call loads the model
    keys = ("nonskin", "hair", "clothing", "background", "opening", "mean_share")
    whens = ("before", "openings_kept", "after")
    summary = {f"{when}_{k}": float(np.mean([r[when][k] for r in rows])) for when in whens for k in keys}
    summary.update({
        "photos": len(rows),
        "free_before": float(np.mean([r["before"]["nonskin"] < FREE_BELOW for r in rows])),
        "free_after": float(np.mean([r["after"]["nonskin"] < FREE_BELOW for r in rows])),
        "opening_photos_kept": sum(r["openings_kept"]["opening"] > 0 for r in rows),
        "opening_photos_after": sum(r["after"]["opening"] > 0 for r in rows),
        "free_below": FREE_BELOW, "probe_size": args.size,
        "segment_ms_median": float(np.median(ms)), "segment_ms_p90": float(np.percentile(ms, 90)),
        "selfie_photos": sum(r["person"] == "selfie" for r in rows),
    })
    by_source = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    columns = ("nonskin", "hair", "clothing", "background", "opening")
    lines = [[src, len(rs), *(f"{100 * np.mean([r[w][k] for r in rs]):.2f}" for w in ("before", "after")
                              for k in columns), f"{100 * np.mean([r['openings_kept']['opening'] for r in rs]):.3f}",
              f"{100 * np.mean([r['after']['opening'] for r in rs]):.3f}"]
             for src, rs in by_source.items()]
    lines.append(["all", len(rows), *(f"{100 * summary[f'{w}_{k}']:.2f}" for w in ("before", "after")
                                      for k in columns),
                  f"{100 * summary['openings_kept_opening']:.3f}", f"{100 * summary['after_opening']:.3f}"])
    print(table(lines, ["source", "photos", "non-skin % before", "hair", "clothing", "background", "opening",
                        "non-skin % after", "hair", "clothing", "background", "opening",
                        "opening % (masks before openings)", "opening % (after)"]))
    print(f"photos with texels mostly from openings: {summary['opening_photos_kept']} with the masks before openings "
          f"were labelled, {summary['opening_photos_after']} after")
    print(f"albedo free of non-skin (< {100 * FREE_BELOW:.1f} % of seen texels): "
          f"{100 * summary['free_before']:.0f} % of photos before, {100 * summary['free_after']:.0f} % after")
    print(f"segmentation: median {summary['segment_ms_median']:.1f} ms, p90 {summary['segment_ms_p90']:.1f} ms "
          f"per photo ({summary['selfie_photos']}/{len(rows)} with the selfie model)")
    path = write_results("clean_skin", {"summary": summary, "photos": rows}, fitter.engine.settings.__dict__)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
