import sys

from syncjob_operator.cli import main

sys.exit(main())
