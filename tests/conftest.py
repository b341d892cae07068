"""Shared fixtures: the real ICT head model and dev photos from ../shared (beside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared_paths import DEV_IMAGES, REPO, SHARED, find_ict_model  # noqa: F401  (shared with tests/addon)

# the tests check the product's defaults: a developer's shell setting must not change them (tests that need it set
# it themselves)
os.environ.pop("LIKENESS_EXPRESSION_ENCODER", None)


@pytest.fixture(scope="session")
def ict_path() -> Path:
    path = find_ict_model()
    if path is None:
        pytest.skip("no ICT head model: neither ../shared/models/ict_facekit nor an installed model "
                    "(`likeness models install ict`)")
    return path


@pytest.fixture(scope="session")
def ict(ict_path):
    from likeness.model.headmodel import load_ict

    return load_ict(ict_path)


@pytest.fixture(scope="session")
def engine():
    """One warm engine for all pipeline tests, like the backend process."""
    from likeness.service.pipeline import Engine

    return Engine()


def dev_photo(name: str) -> Path:
    path = DEV_IMAGES / name
    if not path.is_file():
        pytest.skip(f"dev photo {name} not found under ../shared/data/faces_dev")
    return path
