"""The cluster: the sandbox of N instances behind HAProxy, its runtime API, readiness probes."""
