"""Pure builders: typed values in, Kubernetes manifests (plain dicts) out. No API calls here."""
