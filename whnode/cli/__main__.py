"""``python -m whnode.cli`` (``python -m whnode`` too)."""

import sys

from whnode.cli.main import main

sys.exit(main())
