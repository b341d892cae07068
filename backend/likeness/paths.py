"""Where Likeness keeps user data (installed models, logs).

``LIKENESS_DATA_DIR`` overrides everything (tests use it); otherwise the platform's user data directory.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

#: how to get MediaPipe's Face Landmarker bundle (the blendshape scores and the face-mesh network), for messages
TASK_HINT = "`likeness models install mediapipe-blendshapes` or set $LIKENESS_MEDIAPIPE_TASK."


def data_dir() -> Path:
    """The user data directory, e.g. ``~/.local/share/likeness`` on Linux."""
    override = os.environ.get("LIKENESS_DATA_DIR")
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "likeness"


def encoder_env() -> bool | Path | None:
    """``$LIKENESS_EXPRESSION_ENCODER``: None when unset (the product's default), True for on / 1 / true / yes,
    False for off / 0 / false / no / none, else the Path of a checkpoint to use."""
    value = os.environ.get("LIKENESS_EXPRESSION_ENCODER", "").strip()
    if not value:
        return None
    if value.lower() in ("on", "1", "true", "yes"):
        return True
    if value.lower() in ("off", "0", "false", "no", "none"):
        return False
    return Path(value)


def models_dir() -> Path:
    """Installed models live in ``<data_dir>/models/<name>/``."""
    return data_dir() / "models"


def write_atomically(folder: Path, files: dict[str, bytes]) -> None:
    """Write every file to a temporary name in ``folder``, then rename them in order (last one = the model)."""
    folder.mkdir(parents=True, exist_ok=True)
    temporary: dict[str, str] = {}
    try:
        for name, data in files.items():
            fd, temporary[name] = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        for name, tmp in temporary.items():
            os.replace(tmp, folder / name)
    finally:
        for tmp in temporary.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
