"""``python -m gateway.report`` runs ``nea-report``."""

from gateway.report.cli import main

raise SystemExit(main())
