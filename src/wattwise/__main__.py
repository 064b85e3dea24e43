"""``python -m wattwise`` is the ``wattwise`` command."""

from wattwise.cli.main import main

raise SystemExit(main())
