#!/usr/bin/env bash
# The project's test command (README, and what CI runs): a Python 3.11 virtual environment in .venv with the
# pinned dependencies (bpy 5.0.1, mediapipe 0.10.21, numpy < 2), torch for the machine (the small CPU build on
# Linux without an NVIDIA GPU), then the whole pytest suite on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), "bpy 5.0.1 needs Python 3.11"'
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -c 'import torch, safetensors' 2>/dev/null || .venv/bin/python backend/likeness/learned/setup_torch.py --quiet
.venv/bin/python -m pip install --quiet -e ".[test]"
# timm only to check SMIRK's backbones against it (tests/test_smirk.py); --no-deps: it would pull torchvision
.venv/bin/python -m pip install --quiet --no-deps timm==0.9.16
exec .venv/bin/python -m pytest -q "$@"
