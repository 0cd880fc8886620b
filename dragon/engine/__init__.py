"""What the tasks API does, independent of HTTP: creating, queueing, running and following
tasks, accounts, the storage API, callbacks and the expiry sweeper."""
