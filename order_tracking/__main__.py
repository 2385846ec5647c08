import sys

from order_tracking.cli import main

sys.exit(main())
