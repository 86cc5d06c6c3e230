"""Running a sweep end to end: inputs checked, runs prepared in MLflow, the outcome recorded."""
