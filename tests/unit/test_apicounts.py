"""Counting the operator's writes from kube-apiserver's own metric text."""

from __future__ import annotations

from collections import Counter

from syncjob_devtools.apicounts import api_writes, drift_passes, operator_writes

APISERVER_METRICS = """\
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",resource="syncjobs",verb="POST"} 3
apiserver_request_total{code="200",component="apiserver",resource="syncjobs",verb="APPLY"} 3
apiserver_request_total{code="200",resource="syncjobs",subresource="status",verb="PATCH"} 2
apiserver_request_total{code="409",resource="syncjobs",subresource="status",verb="PATCH"} 1
apiserver_request_total{code="201",component="apiserver",resource="events",verb="POST"} 3
apiserver_request_total{code="200",component="apiserver",resource="syncjobs",verb="LIST"} 9
apiserver_request_total{code="200",component="apiserver",resource="leases",verb="PUT"} 40
apiserver_request_total{code="201",component="apiserver",resource="secrets",verb="POST"} 1
"""


def test_writes_by_verb_and_resource_reads_and_other_resources_left_out() -> None:
    writes = api_writes(APISERVER_METRICS)
    assert writes == Counter(
        {
            "POST syncjobs": 3,
            "APPLY syncjobs": 3,
            "PATCH syncjobs/status": 3,  # every response code counts
            "POST events": 3,
            "POST secrets": 1,
        }
    )
    assert operator_writes(writes) == 9  # the user's creates of SyncJobs and Secret left out


def test_drift_passes_from_the_histogram_count() -> None:
    assert drift_passes("syncjob_drift_pass_duration_seconds_count 7.0\n") == 7
    assert drift_passes("syncjob_drift_pass_scopes 3.0\n") == 0
