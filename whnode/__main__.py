"""``python -m whnode`` runs the command-line interface."""

from whnode.cli import main

raise SystemExit(main())
