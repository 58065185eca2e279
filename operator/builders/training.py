"""The training job: an Indexed Job running torchrun, one pod per node, and for more than one node the headless
Service their rendezvous resolves through."""

from kubetune.api.errors import SpecError, SpecProblem
from kubetune.api.pod_template import PodTemplate
from kubetune.api.pod_template_rules import TRAINER_CONTAINER
from kubetune.api.spec import FineTuneRunSpec
from kubetune.operator import names
from kubetune.operator.builders import common, kueue
from kubetune.operator.builders.common import Manifest, RunRef
from kubetune.operator.builders.trainer_config import build_trainer_config
from kubetune.operator.config import OperatorConfig
from kubetune.operator.placement import Placement

# How each field kubetune.api.pod_template allows joins Kubetune's pod: lists go after Kubetune's items (the pool's
# tolerations, Kubetune's volumes), the rest are set (Kubetune sets none of them).
_APPENDED_POD_FIELDS = ("tolerations", "imagePullSecrets", "volumes")
_SET_POD_FIELDS = ("affinity", "topologySpreadConstraints", "priorityClassName")
PRIORITY_FIELD = "spec.compute.podTemplate.spec.priorityClassName"


def build_workers_service(run: RunRef) -> Manifest:
    """Headless, publishing not-ready pods: pod 0 must resolve before any trainer is Ready. Only a run on more
    than one node needs it (needs_workers_service)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(run, names.workers_service(run.name), names.TRAINER),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {names.RUN_LABEL: run.name, names.COMPONENT_LABEL: names.TRAINER},
            "ports": [{"name": "rendezvous", "port": names.RENDEZVOUS_PORT, "targetPort": names.RENDEZVOUS_PORT}],
        },
    }


def needs_workers_service(placement: Placement) -> bool:
    return placement.nodes > 1


def torchrun_command(run: RunRef, placement: Placement, attempt: int) -> list[str]:
    """Static rendezvous on pod 0: node ranks are the pods' completion indexes, so ranks are stable."""
    return [
        "torchrun",
        f"--nnodes={placement.nodes}",
        f"--nproc-per-node={placement.processes_per_node}",
        "--node-rank=$(JOB_COMPLETION_INDEX)",
        f"--master-addr={names.rendezvous_host(run.name, attempt, placement.nodes)}",
        f"--master-port={names.RENDEZVOUS_PORT}",
        "-m",
        "kubetune.trainer",
        "--config",
        f"{names.TRAINER_CONFIG_DIR}/{names.TRAINER_CONFIG_FILE}",
    ]


# What torchrun leaves for itself of the pod's grace period after its workers stop (it then exits, and
# the kubelet reads the termination message).
SHUTDOWN_MARGIN_SECONDS = 10


def shutdown_env(placement: Placement) -> list[Manifest]:
    """On SIGTERM torchrun signals its workers, waits this long, then SIGKILLs them (30 s unless told): give
    the trainer the pod's grace period to finish its step and checkpoint (kubetune.trainer.preemption)."""
    grace = placement.pool.termination_grace_period_seconds
    return [{"name": "TORCH_ELASTIC_SHUTDOWN_TIMEOUT", "value": str(max(grace - SHUTDOWN_MARGIN_SECONDS, 1))}]


def trainer_resources(placement: Placement) -> Manifest:
    pool = placement.pool
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if pool.cpu:
        requests["cpu"] = pool.cpu
    if pool.memory:
        requests["memory"] = limits["memory"] = pool.memory
    if placement.gpus_per_node:
        requests[pool.gpu_resource] = limits[pool.gpu_resource] = str(placement.gpus_per_node)
    return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}


def _trainer_container(run: RunRef, spec: FineTuneRunSpec, config: OperatorConfig, placement: Placement, attempt: int):
    data_volumes, data_mounts = common.input_volumes(spec, config)
    container = {
        "name": TRAINER_CONTAINER,
        "image": config.images.trainer,
        "imagePullPolicy": config.images.pull_policy,
        "command": torchrun_command(run, placement, attempt),
        "env": [*common.scratch_env(config), *shutdown_env(placement)],
        "envFrom": [*common.storage_env_from(spec, placement.pool_name, config), *common.secret_env_from(config)],
        "ports": [{"name": "rendezvous", "containerPort": names.RENDEZVOUS_PORT}],
        "resources": trainer_resources(placement),
        "securityContext": common.container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "trainer-config", "mountPath": names.TRAINER_CONFIG_DIR, "readOnly": True},
            {"name": "checkpoints", "mountPath": config.checkpoints.mount_path},
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "tmp", "mountPath": "/tmp"},
            *data_mounts,
        ],
    }
    annotation = f"metadata.annotations['{names.TRAINER_CONFIG_ANNOTATION}']"
    config_file = {"path": names.TRAINER_CONFIG_FILE, "fieldRef": {"fieldPath": annotation}}
    volumes = [
        {"name": "trainer-config", "downwardAPI": {"items": [config_file]}},
        {"name": "checkpoints", "persistentVolumeClaim": {"claimName": config.checkpoints.claim_name}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": placement.pool.shared_memory}},
        {"name": "tmp", "emptyDir": {}},
        *data_volumes,
    ]
    return container, volumes


def build_training_pod_template(
    run: RunRef, spec: FineTuneRunSpec, config: OperatorConfig, placement: Placement, attempt: int
) -> Manifest:
    container, volumes = _trainer_container(run, spec, config, placement, attempt)
    pod_spec: Manifest = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": placement.pool.termination_grace_period_seconds,
        "serviceAccountName": names.trainer_service_account(run.name),
        "automountServiceAccountToken": True,  # the trainer patches its run's status.report
        "securityContext": common.pod_security_context(),
        "containers": [container],
        "volumes": volumes,
        **common.placement_fields(placement.pool.node_selector, placement.pool.tolerations),
    }
    if needs_workers_service(placement):
        pod_spec["subdomain"] = names.workers_service(run.name)
    if config.images.pull_secrets:
        pod_spec["imagePullSecrets"] = common.image_pull_secrets(config)
    trainer_config = build_trainer_config(run, spec, config, attempt)
    template = {
        "metadata": {
            "labels": names.labels(run.name, names.TRAINER, attempt),
            "annotations": {names.TRAINER_CONFIG_ANNOTATION: trainer_config.dump()},
        },
        "spec": pod_spec,
    }
    override = spec.compute.pod_template if spec.compute else None
    if override is None:
        return template
    check_pod_template(spec, config)  # never a pod the configuration does not allow, even if decide() missed it
    return merge_pod_template(template, override)


def pod_template_problems(template: PodTemplate | None, config: OperatorConfig) -> list[SpecProblem]:
    """What the run's podTemplate asks that this operator's configuration does not allow (the fixed allow-list
    is the spec's own: kubetune.api.pod_template)."""
    priority = template.spec.priority_class_name if template and template.spec else None
    return common.allow_list_problems(
        PRIORITY_FIELD, priority, config.pod_template.allowed_priority_classes, "priority class",
        "podTemplate.allowedPriorityClasses",
    )


def check_pod_template(spec: FineTuneRunSpec, config: OperatorConfig) -> None:
    """Raise SpecError (the run fails InvalidSpec) for a podTemplate this operator's configuration refuses."""
    problems = pod_template_problems(spec.compute.pod_template if spec.compute else None, config)
    if problems:
        raise SpecError(problems)


def merge_pod_template(template: Manifest, override: PodTemplate) -> Manifest:
    """Add an expert's podTemplate, already within kubetune.api.pod_template's allow-list: every addition comes
    after Kubetune's own, which stay and win (labels, env, volumes, mounts, the pool's placement)."""
    extra = override.model_dump(by_alias=True, exclude_none=True, mode="json")
    meta, pod_extra = extra.get("metadata", {}), extra.get("spec", {})
    metadata = dict(template["metadata"])
    for key in ("labels", "annotations"):
        if meta.get(key):
            metadata[key] = {**meta[key], **template["metadata"].get(key, {})}
    pod = dict(template["spec"])
    for key in _APPENDED_POD_FIELDS:
        if pod_extra.get(key):
            pod[key] = [*pod.get(key, []), *pod_extra[key]]
    for key in _SET_POD_FIELDS:
        if key in pod_extra:
            pod[key] = pod_extra[key]
    [theirs] = pod_extra.get("containers") or [{}]  # at most one: the trainer's
    pod["containers"] = [_merge_trainer(c, theirs) if c["name"] == TRAINER_CONTAINER else c for c in pod["containers"]]
    return {"metadata": metadata, "spec": pod}


def _merge_trainer(ours: Manifest, theirs: Manifest) -> Manifest:
    """env and mounts after Kubetune's (their names cannot clash: the allow-list reserves Kubetune's); envFrom
    before Kubetune's, because among envFrom sources the last wins and Kubetune's credentials Secret must."""
    merged = dict(ours)
    for key in ("env", "volumeMounts"):
        if theirs.get(key):
            merged[key] = [*ours.get(key, []), *theirs[key]]
    if theirs.get("envFrom"):
        merged["envFrom"] = [*theirs["envFrom"], *ours.get("envFrom", [])]
    return merged


def build_training_job(
    run: RunRef,
    spec: FineTuneRunSpec,
    config: OperatorConfig,
    placement: Placement,
    attempt: int,
    queue: str | None = None,
    priority: str | None = None,
) -> Manifest:
    """backoffLimit 0 and a failing podFailurePolicy: any failure fails the Job and the operator owns retries.
    With a Kueue queue it is created suspended with Kueue's labels (builders.kueue)."""
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": common.metadata(run, names.training_job(run.name, attempt), names.TRAINER, attempt),
        "spec": {
            "completionMode": "Indexed",
            "completions": placement.nodes,
            "parallelism": placement.nodes,
            "backoffLimit": 0,
            "podFailurePolicy": {
                "rules": [
                    {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                    {"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [0]}},
                ]
            },
            "template": build_training_pod_template(run, spec, config, placement, attempt),
        },
    }
    return kueue.queued(job, queue, priority)
