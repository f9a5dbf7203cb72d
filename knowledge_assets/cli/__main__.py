"""``python -m knowledge_assets.cli``: the ``knowledge`` command."""

from knowledge_assets.cli.main import main

raise SystemExit(main())
