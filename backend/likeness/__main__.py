"""``python -m likeness ...`` is the same as the ``likeness`` command."""

import sys

from .cli import main

sys.exit(main())
