"""Plain helpers for the trainer's data tests (fixtures stay in tests/trainer/conftest.py); bench/ loads this
file by path for the same quickstart project."""

import shutil
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
FAMILIES = ("llama", "qwen2", "mistral")


def chat(*turns: str, system: str | None = None) -> dict:
    """chat("hi", "hello", ...) -> a valid chat record alternating user/assistant."""
    messages = [{"role": "system", "content": system}] if system else []
    roles = ("user", "assistant")
    messages += [{"role": roles[i % 2], "content": text} for i, text in enumerate(turns)]
    return {"messages": messages}


def small_quickstart(folder: Path, **spec) -> Path:
    """The quickstart manifest with its model and a slice of its data copied next to it (relative paths), one
    epoch at context 128; `spec` updates the manifest's spec (a value of None removes the field)."""
    examples = REPO_ROOT / "examples"
    shutil.copytree(examples / "models" / "tiny-llama", folder / "models" / "tiny-llama")
    (folder / "data").mkdir()
    for name, lines in (("train.jsonl", 48), ("eval.jsonl", 6)):
        text = (examples / "data" / name).read_text().splitlines(keepends=True)[:lines]
        (folder / "data" / name).write_text("".join(text))
    manifest = yaml.safe_load((examples / "quickstart.yaml").read_text())
    manifest["spec"].update(trainingDuration="1ep", contextLength=128, **spec)
    manifest["spec"] = {k: v for k, v in manifest["spec"].items() if v is not None}
    path = folder / "quickstart.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path
