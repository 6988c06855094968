"""``python -m gateway.daemon`` = ``nea-gateway``."""

import sys

from gateway.daemon.cli import main

sys.exit(main())
