"""The Python SDK behind `kubetune.foundation_model`: FineTuneRuns as Databricks-style run objects."""
