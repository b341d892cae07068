"""A real face-recognition judge for the likeness bench: dlib's ResNet face descriptor, and verification figures.

dlib's model (``dlib_face_recognition_resnet_model_v1``, 128-D descriptors; two photos of one person usually sit
below a Euclidean distance of 0.6) comes with PyPI ``face-recognition-models``; ``dlib-bin`` runs it on the CPU,
with no download at run time. The models' package is located without importing it (its ``__init__`` needs
``pkg_resources``, which recent setuptools no longer has).

The figures (:func:`verification`) are pure NumPy so tests can check them on hand-made distances.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

#: dlib's same-person threshold for these descriptors (Euclidean distance).
THRESHOLD = 0.6


def models_folder() -> Path:
    """The folder holding dlib's model files from the ``face-recognition-models`` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the likeness bench needs dlib's models: pip install dlib-bin face-recognition-models")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class FaceJudge:
    """Finds the face in an RGB image (dlib's HOG detector, or a given box) and returns its 128-D descriptor."""

    def __init__(self) -> None:
        import dlib

        folder = models_folder()
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shapes = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
        self.net = dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat"))

    def describe(self, rgb: np.ndarray, fallback_box: tuple[float, float, float, float] | None = None
                 ) -> tuple[np.ndarray | None, bool]:
        """Descriptor (128,) of the largest face in ``rgb`` (H,W,3 uint8), and whether the detector found it.

        Without a detection the face is taken from ``fallback_box`` (x0, y0, x1, y1 in pixels, e.g. the known
        landmarks' bounds); without either the descriptor is None.
        """
        rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
        found = self.detector(rgb, 1)
        if len(found):
            box = max(found, key=lambda r: r.width() * r.height())
        elif fallback_box is not None:
            box = self.dlib.rectangle(*(int(round(v)) for v in fallback_box))
        else:
            return None, False
        shape = self.shapes(rgb, box)
        return np.asarray(self.net.compute_face_descriptor(rgb, shape), np.float64), bool(len(found))


@dataclass(frozen=True)
class Verification:
    """Figures for probes against a gallery of real photos (distances are dlib descriptor distances)."""

    same_mean: float  # mean distance of a probe to the other photos of its person
    auc: float  # P(same-person distance < different-person distance) over all pairs
    tar: float  # share of same-person pairs below THRESHOLD
    rank1: float  # share of probes whose nearest gallery photo shows their person
    probes: int
    same_pairs: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def verification(distances: np.ndarray, probe_person: np.ndarray, gallery_person: np.ndarray,
                 exclude: np.ndarray | None = None) -> Verification:
    """Verification and identification figures.

    ``distances`` (P,G): probe × gallery descriptor distances; ``probe_person`` (P,) and ``gallery_person`` (G,)
    name each row's and column's person; ``exclude`` (P,G) bool marks pairs left out (a probe made from that
    very photo). A probe whose person has no other gallery photo counts for no same-person figure but still for
    the different-person distances.
    """
    d = np.asarray(distances, np.float64)
    keep = np.ones_like(d, bool) if exclude is None else ~np.asarray(exclude, bool)
    same = (np.asarray(probe_person)[:, None] == np.asarray(gallery_person)[None, :])
    same_d, diff_d = d[same & keep], d[~same & keep]
    ranks = rankdata(np.concatenate([same_d, diff_d]))  # AUC by ranks (Mann-Whitney), ties count half
    n_s, n_d = len(same_d), len(diff_d)
    auc = 1.0 - (ranks[:n_s].sum() - n_s * (n_s + 1) / 2) / (n_s * n_d) if n_s and n_d else float("nan")
    masked = np.where(keep, d, np.inf)
    has_same = (same & keep).any(axis=1)
    nearest = masked.argmin(axis=1)
    hit = same[np.arange(len(d)), nearest]
    return Verification(same_mean=float(same_d.mean()) if n_s else float("nan"), auc=float(auc),
                        tar=float((same_d < THRESHOLD).mean()) if n_s else float("nan"),
                        rank1=float(hit[has_same].mean()) if has_same.any() else float("nan"),
                        probes=int(has_same.sum()), same_pairs=int(n_s))


def distance_matrix(probes: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Euclidean distances (P,G) between descriptor rows."""
    return np.linalg.norm(np.asarray(probes)[:, None, :] - np.asarray(gallery)[None, :, :], axis=2)
