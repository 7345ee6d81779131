import sys

from synthweb.cli import main

sys.exit(main())
