import sys

from metarec_core.cli import main

sys.exit(main())
