"""Where the tests find the real ICT head model and the dev photos (shared by tests/ and tests/addon/).

A plain module, not a conftest, so both conftest files can import it: pytest puts ``tests/`` on ``sys.path``
(rootdir-relative conftest import of a folder without ``__init__.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEV_IMAGES = SHARED / "data" / "faces_dev" / "images"


def find_ict_model() -> Path | None:
    """$LIKENESS_ICT_MODEL, else the copy in ../shared, else an installed model."""
    from likeness.model.headmodel import default_ict_path

    for candidate in (os.environ.get("LIKENESS_ICT_MODEL"),
                      SHARED / "models" / "ict_facekit" / "ict_face_model.npz", default_ict_path()):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    return None
