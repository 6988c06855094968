"""``python -m gateway.demo`` = ``make demo``."""

import sys

from gateway.demo.run import main

sys.exit(main())
