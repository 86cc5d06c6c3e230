"""Tune's entry point for a trial: the training stack (torch, the trainer) is imported in the
trial's own process when it starts, not in the driver, which only names this function."""


def train_trial(config: dict) -> None:
    """Train the trial described by ``config`` (``trainable.train_trial``)."""
    from ibsweep.sweep.tuning.trainable import train_trial as train

    train(config)
