"""Ray beyond one machine: connecting to a cluster, checking what it shares, submitting jobs."""
