"""ibsweep: information-plane sweeps of DNNs and BNNs on Ray Tune, tracked in MLflow."""
