"""Ray Tune: the trainable, the trials' settings, the Tuner, search and progress."""
