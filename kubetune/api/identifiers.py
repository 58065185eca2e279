"""Name rules shared by the spec, the operator configuration and the location parser."""

import re

# A Kubernetes DNS label (RFC 1123): claims, pools, Secrets, and run names used as customWeightsPath.
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_LABEL = re.compile(DNS_LABEL_PATTERN)
DNS_LABEL_RULE = "must be a lowercase DNS label (letters, digits, '-')"

# One part of a registerTo name: <catalog>.<schema>[.<name>].
IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
