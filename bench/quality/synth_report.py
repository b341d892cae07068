"""Per-scene rows, group breakdowns and the Markdown tables of the synthetic benchmark."""

from __future__ import annotations

import numpy as np

import synth_metrics as metrics
from synth_scenes import Scene

YAW_BANDS = ((0.0, 15.0), (15.0, 30.0), (30.0, 45.0))  # |yaw| in degrees
SHOWN_WEIGHT = 0.05  # fitted weights below this are left out of the per-scene rows


def yaw_band(yaw: float) -> str:
    lo, hi = next(b for b in YAW_BANDS if abs(yaw) <= b[1])
    return f"yaw ±{lo:.0f}–{hi:.0f}°"


def scene_row(scene: Scene, fit: dict, names: tuple[str, ...]) -> dict:
    """One scene's ground truth and fit summary (errors are added by the caller)."""
    row = {"name": scene.name, "category": scene.category, "yaw_band": yaw_band(scene.yaw),
           "yaw": scene.yaw, "pitch": scene.pitch, "roll": scene.roll, "detected": "error" not in fit,
           "error": fit.get("error"), "expression_true": scene.expression}
    if row["detected"]:
        row.update(expression_fit={n: round(float(w), 3) for n, w in zip(names, fit["expression"])
                                   if w >= SHOWN_WEIGHT},
                   fit_ms=round(fit["fit_ms"], 2), detect_ms=round(fit["detect_ms"], 2))
    return row


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def groups(rows: list[dict], key: str) -> dict[str, dict]:
    """Means of the per-scene errors for each value of ``rows[i][key]`` (scenes without a face count in n only)."""
    out = {}
    for value in sorted({r[key] for r in rows}):
        members = [r for r in rows if r[key] == value]
        found = [r for r in members if r["detected"]]
        out[value] = {"scenes": len(members), "detected": len(found),
                      **{k: _mean([r.get(k) for r in found])
                         for k in ("on_error", "leaked", "vertex_median_mm", "rotation_err_deg")}}
    return out


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.0%}"


def _headline(results: dict) -> list[str]:
    s = results["summary"]
    lines = ["| figure | value | target | met |", "|---|---|---|---|"]
    for key, (op, threshold, label) in metrics.TARGETS.items():
        value = s[key]
        shown = _pct(value) if key == "side_accuracy" else _fmt(value)
        target = "–" if op is None else f"{'≤' if op == '<=' else '≥'} " + (
            f"{threshold:.0%}" if key == "side_accuracy" else f"{threshold:g}")
        verdict = {True: "met", False: "**not met**", None: "–"}[results["met"].get(key)]
        lines.append(f"| {label} | {shown} | {target} | {verdict} |")
    lines.append(f"| faces found | {s['detected']} / {s['scenes']} | all | "
                 f"{'met' if s['detected'] == s['scenes'] else '**not met**'} |")
    return lines


def _diagnostics(results: dict) -> list[str]:
    c = results["landmarks_vs_truth"]
    regions = ", ".join(f"{k} {v:.1f}" for k, v in c.items() if k != "eye_aperture_bias")
    s = results["summary"]
    return [f"Pose bias (fit − true, mean over scenes): yaw {s['yaw_bias_deg']:+.2f}°, pitch "
            f"{s['pitch_bias_deg']:+.2f}°, roll {s['roll_bias_deg']:+.2f}°.", "",
            f"Detector vs the true mesh (MediaPipe's landmarks against the correspondence table's points on the "
            f"true mesh, mean distance in % of the inter-ocular distance): {regions}; detected minus true eye "
            f"aperture (lid gap / eye width): {c['eye_aperture_bias']:+.3f}."]


def _references(results: dict) -> list[str]:
    """The product's figures beside the fit alone on perfect landmarks and MediaPipe's scores taken as weights."""
    perfect, mp = results["perfect_landmarks"], results.get("mediapipe_scores") or {}
    alone = results.get("encoder_alone") or {}
    lines = ["| figure | product (renders) | fit on perfect landmarks | MediaPipe scores alone | encoder alone |",
             "|---|---|---|---|---|"]
    for key in ("on_shape_error", "leaked_mean", "leaked_p90", "auc_mean", "side_accuracy", "expression_mae",
                "vertex_median_mm", "vertex_p90_mm", "rotation_mean_deg"):
        shown = _pct if key == "side_accuracy" else _fmt
        lines.append(f"| {metrics.TARGETS[key][2]} | {shown(results['summary'][key])} | {shown(perfect[key])} | "
                     f"{shown(mp.get(key))} | {shown(alone.get(key))} |")
    return lines


def _breakdown(results: dict) -> list[str]:
    lines = ["| scenes | n | found | on-shape error | leaked Σw | vertex median (mm) | rotation (deg) |",
             "|---|---|---|---|---|---|---|"]
    for table in ("by_category", "by_yaw"):
        for value, g in results[table].items():
            lines.append(f"| {value} | {g['scenes']} | {g['detected']} | {_fmt(g['on_error'])} | "
                         f"{_fmt(g['leaked'])} | {_fmt(g['vertex_median_mm'])} | {_fmt(g['rotation_err_deg'])} |")
    return lines


def _per_shape(results: dict) -> list[str]:
    """One row per action: sided shapes show ``left / right``."""
    shapes = results["per_shape"]
    bases = list(dict.fromkeys(n[:-2] if n.endswith(("_L", "_R")) else n for n in shapes))
    perfect = results["perfect_landmarks"]["auc"]
    lines = ["| shape (L / R) | scenes on | mean true → fit when on | fit when off | MAE | AUC | AUC, perfect "
             "landmarks |", "|---|---|---|---|---|---|---|"]
    for base in bases:
        sides = [n for n in (f"{base}_L", f"{base}_R") if n in shapes] or [base]
        parts = [shapes[n] for n in sides]

        def cell(fn) -> str:
            return " / ".join(fn(p) for p in parts)

        lines.append(f"| {base} | {cell(lambda p: str(p['scenes_on']))} | "
                     f"{cell(lambda p: _fmt(p['mean_true_on']) + ' → ' + _fmt(p['mean_fit_on']))} | "
                     f"{cell(lambda p: _fmt(p['mean_fit_off']))} | {cell(lambda p: _fmt(p['mae'], 3))} | "
                     f"{cell(lambda p: _fmt(p['auc']))} | {' / '.join(_fmt(perfect[n]) for n in sides)} |")
    return lines


def markdown(results: dict) -> str:
    """The benchmark's tables (headline vs targets, references, diagnostics, breakdowns, per shape, failures)
    as Markdown."""
    s, run = results["summary"], results.get("run", {})
    parts = [f"Checkout {run.get('commit', '?')}. Scenes: {s['scenes']} ({'quick' if run.get('quick') else 'full'} "
             f"set), faces found in "
             f"{s['detected']}; AUC over {s['auc_shapes']} shapes; {s['side_cases']} one-sided cases; "
             f"MediaPipe blendshape scores {'used' if run.get('blendshapes') else 'not used'}; detector "
             f"{s['detect_ms_mean']:.0f} ms, fit median {s['fit_ms_median']:.0f} ms per photo.",
             "", *_headline(results), "", *_references(results), "", *_diagnostics(results), "",
             *_breakdown(results), "", *_per_shape(results)]
    if results["failures"]:
        parts += ["", "No face found: " + ", ".join(f"{r['name']} (yaw {r['yaw']:.0f}°)"
                                                    for r in results["failures"])]
    return "\n".join(parts) + "\n"
