"""Training one configuration's packed seeds and measuring every layer, in-process."""
