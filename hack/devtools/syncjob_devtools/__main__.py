import sys

from syncjob_devtools.cli import main

sys.exit(main())
