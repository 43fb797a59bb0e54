"""``python -m scoring_service.client score IN -o OUT``: see cli.py."""
from scoring_service.client.cli import main

raise SystemExit(main())
