"""kopf's edge: the only package that imports kopf, public or private.

Here kopf's callbacks parse a body into a typed SyncJob, hand it to the one reconcile
(`syncjob_operator.reconcile`) and apply the Result it returns; here are kopf's settings, its
log and login set-up, its progress annotations, and the two economies on its watch streams
(slimwatch.py). kopf's private API is verified for the range pyproject.toml pins
(tests/unit/test_kopf_pin.py).
"""
