"""The kopf operator: FineTuneRun to multi-node job to registered model. Never imports torch."""
