import sys

from ferrogate.cli import main

sys.exit(main())
