"""``python -m likeness ...`` is the same as the ``likeness`` command."""

import sys

from .service.cli import main

sys.exit(main())
