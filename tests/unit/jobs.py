"""A typed SyncJob the unit tests share."""

from syncjob_operator.model import SyncJob, SyncJobSpec, TwinMakerSpec

TWINMAKER_JOB = SyncJob(
    namespace="ns",
    name="job",
    uid="u1",
    generation=3,
    spec=SyncJobSpec(
        twinmaker=TwinMakerSpec(
            region="us-east-1",
            workspace_id="ws",
            sync_source="SITEWISE",
            sync_role="arn:aws:iam::123456789012:role/r",
        )
    ),
)
