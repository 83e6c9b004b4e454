"""Local emulators of the AWS IoT TwinMaker and Truto sync-job APIs.

``twinmaker.create_app`` and ``truto.create_app`` build the Starlette apps;
``server.RunningEmulators`` serves both on loopback (tests, demos) and
``server.main`` is the ``syncjob-devtools emulators`` command; ``admin.EmulatorAdmin``
drives the ``/_emulator`` admin API (counters, faults, outages). See docs/emulators.md.
"""
