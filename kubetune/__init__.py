"""Kubetune: fine-tune LLMs on any Kubernetes cluster.

`from kubetune import foundation_model as fm` is the Databricks-compatible SDK.
"""

__version__ = "0.1.0"
