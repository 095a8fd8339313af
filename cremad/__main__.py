import sys

from cremad.cli import main

sys.exit(main())
