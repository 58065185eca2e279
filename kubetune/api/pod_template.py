"""compute.podTemplate: what an expert may add to the training pods, and nothing more.

An allow-list. A run's author may add labels and annotations, narrow placement within the pool
(affinity, topologySpreadConstraints, tolerations), add env, envFrom, volumes of safe kinds and their
mounts to the trainer container, name image pull Secrets, and pick a priority class the operator
allows. Every other field of a Kubernetes PodSpec, Container, Volume and projected source is refused
with its reason: a unit test checks the tables below against the Kubernetes client's models, so a field
a new Kubernetes release adds is decided here, not passed through.

The reserved names and the reasons live in kubetune.api.pod_template_rules. The rules become the CRD's
schema and CEL rules (kubetune.api.crd: a refused field is a property with a `!has(self.field)` rule, the
other checks carry their CEL next to the Python), so `kubectl apply` refuses
a bad template at once, naming the field; FineTuneRunSpec.parse refuses the same, so a run that reaches
the operator some other way fails InvalidSpec before any Job exists. What depends on the operator's
configuration (its allowed priority classes) is checked by the operator
(kubetune.operator.builders.training.pod_template_problems).
"""

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator
from pydantic.alias_generators import to_camel, to_snake

from kubetune.api import pod_template_rules as rules
from kubetune.api.identifiers import DNS_LABEL_PATTERN

# Marks a refused property in the JSON schema; kubetune.api.crd turns it into a `!has(self.field)` rule.
REFUSED = "x-kubetune-refused"
CEL = "x-kubernetes-validations"


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    out = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def refused(reason: str, json_type: str, alias: str | None = None) -> Any:
    """A field a podTemplate must not set: typed in the CRD (so the API server can say why), refused by both.
    json_type: a JSON schema type, or "strings" for an array of strings."""
    schema: dict[str, Any] = {"type": json_type, REFUSED: reason}
    if json_type == "object":
        schema["x-kubernetes-preserve-unknown-fields"] = True
    elif json_type == "array":
        schema["items"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    elif json_type == "strings":
        schema.update(type="array", items={"type": "string"})
    return Field(None, alias=alias, description=f"Refused: {reason}.", json_schema_extra=schema)


class _TemplateModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @field_validator("*")
    @classmethod
    def _refuse(cls, value: Any, info) -> Any:
        extra = cls.model_fields[info.field_name].json_schema_extra
        if value is not None and isinstance(extra, dict) and REFUSED in extra:
            raise ValueError(f"is not allowed in a pod template: {extra[REFUSED]}")
        return value


def _with_refused(model: type[_TemplateModel], fields: dict[str, tuple[str, str]]) -> type[_TemplateModel]:
    """The model plus one refused field per entry: camelCase name -> (JSON type, reason)."""
    definitions = {
        to_snake(name): (Any, refused(reason, json_type, alias=name))
        for name, (json_type, reason) in fields.items()
    }
    return create_model(model.__name__, __base__=model, __doc__=model.__doc__, **definitions)


Preserved = dict[str, Any]  # content the API server checks when the Job is created


class TemplateMetadata(_TemplateModel):
    labels: dict[str, str] | None = Field(
        None,
        max_length=64,
        description=f"Extra labels on the training pods; Kubetune's own win. Each key {rules.LABEL_RULE}.",
        json_schema_extra={
            CEL: [
                cel(
                    f"self.all(k, !(k in {_cel_list(rules.RESERVED_LABELS)}) && "
                    f"!{_cel_list(rules.RESERVED_LABEL_PREFIXES)}.exists(p, k.startsWith(p)))",
                    f"labels {rules.LABEL_RULE}",
                )
            ]
        },
    )
    annotations: dict[str, str] | None = Field(
        None,
        max_length=64,
        description=f"Extra annotations on the training pods. Each key {rules.ANNOTATION_RULE}.",
        json_schema_extra={
            CEL: [
                cel(
                    f"self.all(k, !{_cel_list(rules.RESERVED_ANNOTATION_PREFIXES)}.exists(p, k.startsWith(p)))",
                    f"annotations {rules.ANNOTATION_RULE}",
                )
            ]
        },
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        bad = [k for k in value or {} if k in rules.RESERVED_LABELS or k.startswith(rules.RESERVED_LABEL_PREFIXES)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: {rules.LABEL_RULE}")
        return value

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        bad = [k for k in value or {} if k.startswith(rules.RESERVED_ANNOTATION_PREFIXES)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: {rules.ANNOTATION_RULE}")
        return value


class Affinity(_TemplateModel):
    """Only narrows where the pods go: the pool's nodeSelector still applies on top of it."""

    node_affinity: Preserved | None = None
    pod_affinity: Preserved | None = None
    pod_anti_affinity: Preserved | None = None


class Toleration(_TemplateModel):
    key: str | None = None
    operator: Literal["Equal", "Exists"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class LocalObjectReference(_TemplateModel):
    name: str = Field(..., min_length=1, max_length=253)
    optional: bool | None = None


class EnvVarSource(_TemplateModel):
    """A value by reference: a key of a ConfigMap or Secret in the run's namespace, or a field of the pod."""

    config_map_key_ref: Preserved | None = None
    secret_key_ref: Preserved | None = None
    field_ref: Preserved | None = None
    resource_field_ref: Preserved | None = None


_ENV_NAMES_CEL = _cel_list(rules.RESERVED_ENV_NAMES)
_ENV_PREFIXES_CEL = _cel_list(rules.RESERVED_ENV_PREFIXES)


class EnvVar(_TemplateModel):
    model_config = ConfigDict(
        json_schema_extra={
            CEL: [
                cel(
                    f"!(self.name.upperAscii() in {_ENV_NAMES_CEL}) && "
                    f"!{_ENV_PREFIXES_CEL}.exists(p, self.name.upperAscii().startsWith(p))",
                    f"env name {rules.ENV_NAME_RULE}",
                    ".name",
                )
            ]
        }
    )

    name: str = Field(..., min_length=1, max_length=256)
    value: str | None = None
    value_from: EnvVarSource | None = None

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if rules.is_reserved_env(value):
            raise ValueError(rules.ENV_NAME_RULE)
        return value


class EnvFromSource(_TemplateModel):
    """Every key of a ConfigMap or Secret of the run's namespace, by reference, under a prefix of your own."""

    model_config = ConfigDict(
        json_schema_extra={
            CEL: [
                cel(
                    f"!{_ENV_PREFIXES_CEL}.exists(p, self.prefix.upperAscii().startsWith(p) "
                    "|| p.startsWith(self.prefix.upperAscii())) "
                    f"&& !{_ENV_NAMES_CEL}.exists(n, n.startsWith(self.prefix.upperAscii()))",
                    f"envFrom prefix {rules.ENV_PREFIX_RULE}",
                    ".prefix",
                )
            ]
        }
    )

    prefix: str = Field(..., min_length=1, max_length=128, description=f"Required: {rules.ENV_PREFIX_RULE}.")
    config_map_ref: LocalObjectReference | None = None
    secret_ref: LocalObjectReference | None = None

    @field_validator("prefix")
    @classmethod
    def _safe_prefix(cls, value: str) -> str:
        if not rules.env_prefix_is_safe(value):
            raise ValueError(rules.ENV_PREFIX_RULE)
        return value


class VolumeMount(_TemplateModel):
    model_config = ConfigDict(
        json_schema_extra={
            CEL: [
                cel(
                    f"self.mountPath.matches({json.dumps(rules.NORMAL_PATH)}) "
                    f"&& !self.mountPath.matches({json.dumps(rules.DOT_SEGMENT)}) "
                    f"&& !{_cel_list(rules.RESERVED_MOUNT_PATHS)}.exists(r, self.mountPath == r || "
                    "self.mountPath.startsWith(r + '/') || r.startsWith(self.mountPath + '/'))",
                    f"mountPath {rules.MOUNT_PATH_RULE}",
                    ".mountPath",
                )
            ]
        }
    )

    name: str = Field(..., max_length=63, description="One of podTemplate.spec.volumes.")
    mount_path: str = Field(..., min_length=2, max_length=1024)
    read_only: bool | None = None
    sub_path: str | None = Field(None, max_length=1024)
    sub_path_expr: str | None = Field(None, max_length=1024)
    recursive_read_only: Literal["Disabled", "IfPossible", "Enabled"] | None = None
    mount_propagation: Any = refused(rules.PROPAGATION, "string")

    @field_validator("mount_path")
    @classmethod
    def _safe_path(cls, value: str) -> str:
        if not rules.mount_path_is_safe(value):
            raise ValueError(rules.MOUNT_PATH_RULE)
        return value


class _Container(_TemplateModel):
    """Additions to Kubetune's trainer container: env, envFrom and volume mounts; Kubetune's own stay and win."""

    name: Literal[rules.TRAINER_CONTAINER] = Field(..., description="Only the trainer container can be extended.")
    env: list[EnvVar] | None = Field(None, max_length=128)
    env_from: list[EnvFromSource] | None = Field(None, max_length=16)
    volume_mounts: list[VolumeMount] | None = Field(None, max_length=32)


Container = _with_refused(
    _Container,
    {
        "image": ("string", rules.CONTAINER),
        "imagePullPolicy": ("string", rules.CONTAINER),
        "command": ("strings", rules.CONTAINER),
        "args": ("strings", rules.CONTAINER),
        "workingDir": ("string", rules.CONTAINER),
        "ports": ("array", rules.CONTAINER),
        "resources": ("object", rules.CONTAINER),
        "resizePolicy": ("array", rules.CONTAINER),
        "securityContext": ("object", rules.CONTAINER),
        "lifecycle": ("object", rules.CONTAINER),
        "livenessProbe": ("object", rules.CONTAINER),
        "readinessProbe": ("object", rules.CONTAINER),
        "startupProbe": ("object", rules.CONTAINER),
        "restartPolicy": ("string", rules.CONTAINER),
        "restartPolicyRules": ("array", rules.CONTAINER),
        "terminationMessagePath": ("string", rules.CONTAINER),
        "terminationMessagePolicy": ("string", rules.CONTAINER),
        "volumeDevices": ("array", rules.CONTAINER),
        "stdin": ("boolean", rules.CONTAINER),
        "stdinOnce": ("boolean", rules.CONTAINER),
        "tty": ("boolean", rules.CONTAINER),
    },
)


class _VolumeProjection(_TemplateModel):
    config_map: Preserved | None = None
    secret: Preserved | None = None
    downward_api: Preserved | None = Field(None, alias="downwardAPI")


VolumeProjection = _with_refused(
    _VolumeProjection,
    {
        "serviceAccountToken": ("object", rules.IDENTITY),
        "podCertificate": ("object", rules.IDENTITY),
        "clusterTrustBundle": ("object", rules.CLUSTER_SCOPED),
    },
)


class ProjectedVolume(_TemplateModel):
    sources: list[VolumeProjection] | None = Field(None, max_length=16)  # type: ignore[valid-type]
    default_mode: int | None = None


_SOURCES = ("configMap", "secret", "emptyDir", "persistentVolumeClaim", "ephemeral", "projected", "downwardAPI")


class _Volume(_TemplateModel):
    """A volume of a kind the restricted Pod Security Standard allows, from the run's own namespace."""

    model_config = ConfigDict(
        json_schema_extra={
            CEL: [
                cel(
                    f"!(self.name in {_cel_list(rules.RESERVED_VOLUME_NAMES)}) "
                    f"&& !self.name.startsWith({json.dumps(rules.RESERVED_VOLUME_PREFIX)})",
                    f"volume name {rules.VOLUME_NAME_RULE}",
                    ".name",
                ),
                cel(" + ".join(f"(has(self.{s}) ? 1 : 0)" for s in _SOURCES) + " == 1", rules.ONE_SOURCE_RULE),
            ]
        }
    )

    name: str = Field(..., max_length=63, pattern=DNS_LABEL_PATTERN)
    config_map: Preserved | None = None
    secret: Preserved | None = None
    empty_dir: Preserved | None = None
    persistent_volume_claim: Preserved | None = None
    ephemeral: Preserved | None = None
    projected: ProjectedVolume | None = None
    downward_api: Preserved | None = Field(None, alias="downwardAPI")

    @field_validator("name")
    @classmethod
    def _not_kubetunes(cls, value: str) -> str:
        if value in rules.RESERVED_VOLUME_NAMES or value.startswith(rules.RESERVED_VOLUME_PREFIX):
            raise ValueError(rules.VOLUME_NAME_RULE)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "_Volume":
        fields = {f.alias or n: n for n, f in type(self).model_fields.items()}
        if sum(getattr(self, fields[s]) is not None for s in _SOURCES) != 1:
            raise ValueError(rules.ONE_SOURCE_RULE)
        return self


Volume = _with_refused(
    _Volume,
    {
        "hostPath": ("object", rules.NODE),
        "gitRepo": ("object", rules.NODE),
        "csi": ("object", rules.CSI),
        "image": ("object", rules.IMAGE_VOLUME),
        **{
            name: ("object", rules.INLINE_STORAGE)
            for name in (
                "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "fc", "flexVolume", "flocker",
                "gcePersistentDisk", "glusterfs", "iscsi", "nfs", "photonPersistentDisk", "portworxVolume", "quobyte",
                "rbd", "scaleIO", "storageos", "vsphereVolume",
            )
        },
    },
)


class ImagePullSecret(_TemplateModel):
    name: str = Field(..., min_length=1, max_length=253)


class _PodSpec(_TemplateModel):
    """What a podTemplate.spec may set; everything else in a PodSpec is refused with its reason."""

    model_config = ConfigDict(
        json_schema_extra={
            CEL: [
                cel(
                    "!has(self.containers) || self.containers.all(c, !has(c.volumeMounts) || "
                    "c.volumeMounts.all(m, has(self.volumes) && self.volumes.exists(v, v.name == m.name)))",
                    rules.MOUNTS_NAME_VOLUMES_RULE,
                )
            ]
        }
    )

    affinity: Affinity | None = Field(None, description="Node and pod (anti-)affinity within the pool.")
    tolerations: list[Toleration] | None = Field(None, max_length=32, description="Added after the pool's tolerations.")
    topology_spread_constraints: list[Preserved] | None = Field(None, max_length=8)
    priority_class_name: str | None = Field(
        None,
        max_length=253,
        description="One of the priority classes the operator configuration allows "
        "(podTemplate.allowedPriorityClasses).",
        json_schema_extra={
            CEL: [
                cel(
                    f"!self.startsWith({json.dumps(rules.SYSTEM_PRIORITY_PREFIX)})",
                    f"priorityClassName {rules.PRIORITY_RULE}",
                )
            ]
        },
    )
    image_pull_secrets: list[ImagePullSecret] | None = Field(None, max_length=16)
    volumes: list[Volume] | None = Field(None, max_length=32)  # type: ignore[valid-type]
    containers: list[Container] | None = Field(None, max_length=1)  # type: ignore[valid-type]

    @field_validator("priority_class_name")
    @classmethod
    def _not_system(cls, value: str | None) -> str | None:
        if value is not None and value.startswith(rules.SYSTEM_PRIORITY_PREFIX):
            raise ValueError(rules.PRIORITY_RULE)
        return value

    @model_validator(mode="after")
    def _mounts_name_template_volumes(self) -> "_PodSpec":
        volumes = {v.name for v in self.volumes or []}
        for container in self.containers or []:
            for mount in container.volume_mounts or []:
                if mount.name not in volumes:
                    raise ValueError(f"volumeMount {mount.name!r}: {rules.MOUNTS_NAME_VOLUMES_RULE}")
        return self


PodSpec = _with_refused(
    _PodSpec,
    {
        "initContainers": ("array", rules.ONLY_TRAINER),
        "ephemeralContainers": ("array", rules.ONLY_TRAINER),
        "shareProcessNamespace": ("boolean", rules.ONLY_TRAINER),
        "hostNetwork": ("boolean", rules.NODE),
        "hostPID": ("boolean", rules.NODE),
        "hostIPC": ("boolean", rules.NODE),
        "hostUsers": ("boolean", rules.NODE),
        "securityContext": ("object", rules.SECURITY),
        "os": ("object", rules.SECURITY),
        "nodeName": ("string", rules.PLACEMENT),
        "nodeSelector": ("object", rules.PLACEMENT),
        "schedulerName": ("string", rules.PLACEMENT),
        "schedulingGates": ("array", rules.PLACEMENT),
        "schedulingGroup": ("object", rules.PLACEMENT),
        "runtimeClassName": ("string", rules.RUNTIME),
        "overhead": ("object", rules.RUNTIME),
        "serviceAccountName": ("string", rules.IDENTITY),
        "serviceAccount": ("string", rules.IDENTITY),
        "automountServiceAccountToken": ("boolean", rules.IDENTITY),
        "hostname": ("string", rules.RENDEZVOUS),
        "hostnameOverride": ("string", rules.RENDEZVOUS),
        "subdomain": ("string", rules.RENDEZVOUS),
        "setHostnameAsFQDN": ("boolean", rules.RENDEZVOUS),
        "dnsPolicy": ("string", rules.RENDEZVOUS),
        "dnsConfig": ("object", rules.RENDEZVOUS),
        "hostAliases": ("array", rules.RENDEZVOUS),
        "enableServiceLinks": ("boolean", rules.RENDEZVOUS),
        "restartPolicy": ("string", rules.LIFETIME),
        "activeDeadlineSeconds": ("integer", rules.LIFETIME),
        "terminationGracePeriodSeconds": ("integer", rules.LIFETIME),
        "readinessGates": ("array", rules.LIFETIME),
        "evictionResponders": ("array", rules.LIFETIME),
        "resources": ("object", rules.SIZING),
        "resourceClaims": ("array", rules.SIZING),
        "priority": ("integer", rules.PRIORITY),
        "preemptionPolicy": ("string", rules.PRIORITY),
    },
)


class PodTemplate(_TemplateModel):
    """Additions to the training pods, within an allow-list (see the user guide)."""

    metadata: TemplateMetadata | None = None
    spec: PodSpec | None = None  # type: ignore[valid-type]
