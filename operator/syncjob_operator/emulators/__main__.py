"""``python -m syncjob_operator.emulators``: the same as ``syncjob-operator emulators``."""

from syncjob_operator.emulators.server import main

raise SystemExit(main())
