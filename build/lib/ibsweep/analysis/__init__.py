"""Analysis of information-plane trajectories: mutual-information estimators, phases, statistics."""
