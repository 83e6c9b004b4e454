"""syncjob-operator: reconciles SyncJob objects into AWS IoT TwinMaker and Truto sync jobs."""
