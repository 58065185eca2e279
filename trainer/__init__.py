"""The trainer: data to registered model, run by torchrun in the training pods or locally. Never imports kopf."""
