"""Local mode: a whole FineTuneRun on one machine, without a cluster."""
