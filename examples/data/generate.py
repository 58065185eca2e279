"""Writes the quickstart's synthetic datasets; deterministic, so re-running changes nothing.

    python examples/data/generate.py            # from the repository root

train.jsonl, eval.jsonl              CHAT_COMPLETION: short single- and multi-turn conversations
instruction/train.jsonl              INSTRUCTION_FINETUNE: prompt/response pairs
cpt/*.txt                            CONTINUED_PRETRAIN: one document per file
"""

import json
import random
import sys
from pathlib import Path

CAPITALS = {
    "France": "Paris", "Spain": "Madrid", "Italy": "Rome", "Germany": "Berlin", "Portugal": "Lisbon",
    "Japan": "Tokyo", "Canada": "Ottawa", "Kenya": "Nairobi", "Peru": "Lima", "Egypt": "Cairo",
    "Norway": "Oslo", "Poland": "Warsaw", "Chile": "Santiago", "India": "New Delhi", "Greece": "Athens",
}
OPPOSITES = {
    "hot": "cold", "big": "small", "fast": "slow", "early": "late", "light": "dark", "open": "closed",
    "happy": "sad", "full": "empty", "up": "down", "old": "new", "strong": "weak", "loud": "quiet",
}
WORDS = ["apple", "river", "garden", "planet", "window", "rabbit", "yellow", "kettle", "forest", "cloud", "music", "bridge"]
SYSTEM_PROMPTS = ["You are a concise assistant.", "Answer in one short sentence.", "You are a friendly tutor."]
FACTS = [
    ("What does a Kubernetes pod hold?", "A pod holds one or more containers that share a network and storage."),
    ("What is fine-tuning?", "Fine-tuning adapts a pretrained model to new data with a little more training."),
    ("Why does the sun rise in the east?", "Because the Earth turns from west to east."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What is a job in Kubernetes?", "A job runs pods until a given number of them finish successfully."),
    ("How many days are in a week?", "There are seven days in a week."),
]


def arithmetic(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, 50), rng.randint(0, 50)
    word, value = rng.choice([("plus", a + b), ("minus", a - b), ("times", a * b)])
    return f"What is {a} {word} {b}?", f"{a} {word} {b} is {value}."


def capital(rng: random.Random) -> tuple[str, str]:
    country = rng.choice(sorted(CAPITALS))
    return f"What is the capital of {country}?", f"The capital of {country} is {CAPITALS[country]}."


def opposite(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(sorted(OPPOSITES))
    return f"What is the opposite of {word}?", f"The opposite of {word} is {OPPOSITES[word]}."


def reverse(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(WORDS)
    return f"Spell the word {word} backwards.", f"{word} backwards is {word[::-1]}."


def letters(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(WORDS)
    return f"How many letters are in the word {word}?", f"The word {word} has {len(word)} letters."


def fact(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FACTS)


QUESTIONS = [arithmetic, capital, opposite, reverse, letters, fact]


def conversation(rng: random.Random) -> dict:
    messages = []
    if rng.random() < 0.25:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        question, answer = rng.choice(QUESTIONS)(rng)
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": messages}


def instruction(rng: random.Random) -> dict:
    prompt, response = rng.choice(QUESTIONS)(rng)
    return {"prompt": prompt, "response": response}


def document(rng: random.Random, index: int) -> str:
    sentences = [f"Note {index}."]
    for _ in range(rng.randint(4, 12)):
        question, answer = rng.choice(QUESTIONS)(rng)
        sentences.append(f"{question} {answer}")
    return "\n".join(sentences) + "\n"


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def generate(root: Path) -> None:
    rng = random.Random(0)
    write_jsonl(root / "train.jsonl", [conversation(rng) for _ in range(320)])
    write_jsonl(root / "eval.jsonl", [conversation(rng) for _ in range(40)])
    write_jsonl(root / "instruction" / "train.jsonl", [instruction(rng) for _ in range(120)])
    for index in range(12):
        path = root / "cpt" / f"doc-{index:02d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(document(rng, index), encoding="utf-8")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
