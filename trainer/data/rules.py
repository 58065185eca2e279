"""A run's data rules (kubetune.api.data_rules) with the model's own say: its folder's config.json
and whether its chat template renders a `system` message. The trainer, `kubetune validate-data`
(the validation step) and local mode all decide through `rules_for`.
"""

from pathlib import Path

from jinja2.exceptions import TemplateError

from kubetune.api.data_rules import DataRules, data_rules
from kubetune.api.locations import PVC_MOUNT_ROOT, parse_model
from kubetune.api.object_store import ObjectStoreError, stage_folder


def tokenizer_accepts_system_role(tokenizer) -> bool:
    """Whether the chat template renders a system message (Mistral's raises instead)."""
    if not tokenizer.chat_template:
        return True
    probe = [{"role": role, "content": role[0]} for role in ("system", "user", "assistant")]
    try:
        tokenizer.apply_chat_template(probe, tokenize=False)
    except TemplateError:
        return False
    return True


def rules_for(
    model: str, task_type: str, context_length: int | None, *, tokenizer=None, folder_max: int | None = None
) -> DataRules:
    """The rules for `model`; raises ValueError when contextLength exceeds the model's maximum."""
    template_accepts = None if tokenizer is None else tokenizer_accepts_system_role(tokenizer)
    return data_rules(model, task_type, context_length, folder_max=folder_max, template_accepts_system=template_accepts)


def model_folder(model: str, pvc_mount_root: Path | str = PVC_MOUNT_ROOT) -> Path | None:
    """The local folder `model` names (pvc://, a path, or an existing relative folder; for an object store, a
    staged copy of its config and tokenizer, without the weights); None for hub ids. Raises ValueError for a
    form that is no model or an object-store folder that cannot be read."""
    if Path(model).is_dir():  # on a workstation a relative folder needs no ./
        return Path(model)
    location = parse_model(model)
    if location.kind == "object_store":
        try:
            return stage_folder(model, weights=False)
        except ObjectStoreError as error:
            raise ValueError(str(error)) from None
    return location.local_path(pvc_mount_root)

