"""What Kubetune reserves in its training pods, and why a pod template field is refused: the facts behind
kubetune.api.pod_template's allow-list, shared by its models (Python and CEL) and the operator.

Kubetune's own volumes, mounts and env are set by kubetune.operator.builders; a unit test checks that
everything the builders put in a training pod is reserved here.
"""

import re

from kubetune.api.failures import TERMINATION_LOG
from kubetune.api.locations import PVC_MOUNT_ROOT

TRAINER_CONTAINER = "trainer"

# Kubetune's own volumes, mounts and env in the training pods (kubetune.operator.builders; a unit test checks
# that everything the builders set is covered). The checkpoint mount is the configuration's default.
RESERVED_VOLUME_NAMES = ("trainer-config", "checkpoints", "dshm", "tmp")
RESERVED_VOLUME_PREFIX = "data-"
RESERVED_MOUNT_PATHS = ("/etc/kubetune", "/checkpoints", "/dev/shm", "/tmp", PVC_MOUNT_ROOT, TERMINATION_LOG)
# Names Kubetune sets or relies on: its scratch env, torchrun's ranks, the GPUs the device plugin hands out,
# where the trainer's HTTP and TLS go (MLflow, the Kubernetes API). Compared case-insensitively.
RESERVED_ENV_NAMES = (
    *("HOME", "PATH", "HF_HOME"),
    *("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE"),
    *("ROLE_RANK", "ROLE_NAME", "ROLE_WORLD_SIZE", "JOB_COMPLETION_INDEX", "CUDA_VISIBLE_DEVICES"),
    *("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"),
    *("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"),
)
RESERVED_ENV_PREFIXES = (
    *("KUBETUNE_", "KUBERNETES_", "TORCH_ELASTIC_", "TORCHELASTIC_", "MASTER_"),
    *("NVIDIA_", "MLFLOW_", "LD_", "PYTHON"),
)
RESERVED_LABELS = ("app.kubernetes.io/managed-by", "job-name", "controller-uid")
RESERVED_LABEL_PREFIXES = ("kubetune.io/", "batch.kubernetes.io/", "kueue.x-k8s.io/")
RESERVED_ANNOTATION_PREFIXES = (
    "kubetune.io/",
    "container.apparmor.security.beta.kubernetes.io/",
    "seccomp.security.alpha.kubernetes.io/",
    "container.seccomp.security.alpha.kubernetes.io/",
)
SYSTEM_PRIORITY_PREFIX = "system-"

ENV_NAME_RULE = (
    f"must not be a variable Kubetune sets or relies on ({', '.join(RESERVED_ENV_NAMES)}) nor start with "
    f"{', '.join(RESERVED_ENV_PREFIXES)}: the trainer's wiring (ranks, rendezvous, GPUs, MLflow, the Kubernetes API) "
    "stays Kubetune's"
)
ENV_PREFIX_RULE = (
    "is required and must keep every variable it makes out of Kubetune's (see env): the keys of a ConfigMap or "
    "Secret are not known before the pod starts; to set one key under a name of your choice use env[].valueFrom"
)
VOLUME_NAME_RULE = (
    f"must not be one of Kubetune's volumes ({', '.join(RESERVED_VOLUME_NAMES)}, {RESERVED_VOLUME_PREFIX}*)"
)
MOUNT_PATH_RULE = (
    "must be a normalised absolute path (no '.', '..', '//' or trailing '/') not at, under or above one of "
    f"Kubetune's mounts ({', '.join(RESERVED_MOUNT_PATHS)})"
)
LABEL_RULE = (
    "must not set Kubetune's, the Job's or Kueue's labels "
    f"({', '.join(RESERVED_LABELS + RESERVED_LABEL_PREFIXES)}*)"
)
ANNOTATION_RULE = (
    "must not set Kubetune's annotations or security profiles by annotation "
    f"({', '.join(RESERVED_ANNOTATION_PREFIXES)}*)"
)
PRIORITY_RULE = (
    "must not be a system priority class (system-node-critical, system-cluster-critical): those are the cluster's"
)
ONE_SOURCE_RULE = (
    "a volume needs exactly one source: configMap, secret, emptyDir, persistentVolumeClaim, ephemeral, projected "
    "or downwardAPI"
)
MOUNTS_NAME_VOLUMES_RULE = (
    "every volumeMount must name one of podTemplate.spec.volumes (Kubetune's own volumes are not for reuse)"
)

# Why a field is refused, by kind of reason.
ONLY_TRAINER = "the training pods run only Kubetune's trainer container"
NODE = "it reaches the node (its namespaces, devices or filesystem), which the Pod Security Standards forbid"
SECURITY = "Kubetune sets the pods' security context (the restricted Pod Security Standard)"
PLACEMENT = (
    "placement is the node pool's (its nodeSelector and tolerations stay): narrow it with affinity or "
    "topologySpreadConstraints"
)
IDENTITY = "the trainer's identity (its ServiceAccount and token) is Kubetune's"
RENDEZVOUS = "torchrun's rendezvous needs Kubetune's hostnames and the cluster's DNS"
LIFETIME = "Kubetune owns the pods' lifetime (restarts, deadlines, the pool's grace period)"
SIZING = "Kubetune sizes the pods from the pool (GPUs, CPU, memory)"
PRIORITY = "the priority comes from priorityClassName"
RUNTIME = "the container runtime is the cluster's choice"
CONTAINER = "Kubetune owns the trainer container's image, command, resources, probes and security"
INLINE_STORAGE = (
    "an inline volume reaches storage directly, outside the namespace's claims and the restricted Pod Security "
    "Standard: use a persistentVolumeClaim (or an ephemeral volume) of a StorageClass the cluster provides"
)
CSI = (
    "an inline CSI volume acts with its driver's node-level identity, which Kubetune cannot vet: use a "
    "persistentVolumeClaim"
)
IMAGE_VOLUME = "an image volume pulls content onto the node outside the trainer image: use a persistentVolumeClaim"
CLUSTER_SCOPED = "it reads a cluster-scoped object, outside the run's namespace"
PROPAGATION = "mount propagation shares mounts with the node"


def is_reserved_env(name: str) -> bool:
    upper = name.upper()
    return upper in RESERVED_ENV_NAMES or upper.startswith(RESERVED_ENV_PREFIXES)


def env_prefix_is_safe(prefix: str) -> bool:
    """No variable `prefix + key` can be reserved, whatever the key."""
    upper = prefix.upper()
    return bool(upper) and not (
        upper.startswith(RESERVED_ENV_PREFIXES)
        or any(p.startswith(upper) for p in RESERVED_ENV_PREFIXES)
        or any(n.startswith(upper) for n in RESERVED_ENV_NAMES)
    )


# RE2 as well: the CRD's CEL rules use them as written.
NORMAL_PATH = r"^(/[^/]+)+$"
DOT_SEGMENT = r"(^|/)[.][.]?(/|$)"


def mount_path_is_safe(path: str) -> bool:
    if not re.fullmatch(NORMAL_PATH, path) or re.search(DOT_SEGMENT, path):
        return False
    return not any(path == r or path.startswith(r + "/") or r.startswith(path + "/") for r in RESERVED_MOUNT_PATHS)

