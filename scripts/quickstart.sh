#!/usr/bin/env bash
# One command from a fresh clone to a head: installs the backend in .venv, installs the ICT head model
# (from ../shared when it is there, else downloaded from GitHub), and reconstructs the public-domain astronaut
# portrait that ships with scikit-image into out/astronaut (bundle + preview.png).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[demo]"
if ! .venv/bin/likeness models list | grep -qE '^ict +installed'; then
    local_copy=../shared/models/ict_facekit/ict_face_model.npz
    if [ -f "$local_copy" ]; then
        .venv/bin/likeness models install ict --from "$local_copy"
    else
        .venv/bin/likeness models install ict
    fi
fi
rm -rf out/astronaut
.venv/bin/likeness demo -o out/astronaut
echo "Open out/astronaut/preview.png, or import out/astronaut into Blender (Likeness panel > Import bundle)."
