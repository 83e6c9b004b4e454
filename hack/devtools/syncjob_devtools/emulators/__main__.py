"""``python -m syncjob_devtools.emulators``: the same as ``syncjob-devtools emulators``."""

from syncjob_devtools.emulators.server import main

raise SystemExit(main())
