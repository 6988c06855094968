"""``python -m gateway.nea_endpoint`` = ``nea-endpoint``."""

import sys

from gateway.nea_endpoint.cli import main

sys.exit(main())
