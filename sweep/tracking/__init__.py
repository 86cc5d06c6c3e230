"""MLflow tracking: the store, its runs, a retrying metric sink and its disk spool."""
