"""Plain helpers for the trainer's data tests (fixtures stay in tests/trainer/conftest.py)."""

FAMILIES = ("llama", "qwen2", "mistral")


def chat(*turns: str, system: str | None = None) -> dict:
    """chat("hi", "hello", ...) -> a valid chat record alternating user/assistant."""
    messages = [{"role": "system", "content": system}] if system else []
    roles = ("user", "assistant")
    messages += [{"role": roles[i % 2], "content": text} for i, text in enumerate(turns)]
    return {"messages": messages}
