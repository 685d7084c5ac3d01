"""``python -m jobsys``."""

from jobsys.cli import main

raise SystemExit(main())
