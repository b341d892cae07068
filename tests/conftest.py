"""Shared fixtures: the real ICT head model and dev photos from ../shared (beside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEV_IMAGES = SHARED / "data" / "faces_dev" / "images"


def find_ict_model() -> Path | None:
    """$LIKENESS_ICT_MODEL, else the copy in ../shared, else an installed model."""
    from likeness.headmodel import default_ict_path

    for candidate in (os.environ.get("LIKENESS_ICT_MODEL"),
                      SHARED / "models" / "ict_facekit" / "ict_face_model.npz", default_ict_path()):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    return None


@pytest.fixture(scope="session")
def ict_path() -> Path:
    path = find_ict_model()
    if path is None:
        pytest.skip("no ICT head model: neither ../shared/models/ict_facekit nor an installed model "
                    "(`likeness models install ict`)")
    return path


@pytest.fixture(scope="session")
def ict(ict_path):
    from likeness.headmodel import load_ict

    return load_ict(ict_path)


@pytest.fixture(scope="session")
def engine():
    """One warm engine for all pipeline tests, like the backend process."""
    from likeness.pipeline import Engine

    return Engine()


def dev_photo(name: str) -> Path:
    path = DEV_IMAGES / name
    if not path.is_file():
        pytest.skip(f"dev photo {name} not found under ../shared/data/faces_dev")
    return path
