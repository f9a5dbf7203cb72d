"""Generated documents for crash tests: every sentence unique, so every chunk is a distinct call."""

from __future__ import annotations

from knowledge_assets.pipeline.models import DocumentInput

_FIRST = ["Alice", "Boris", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas"]
_LAST = ["Novak", "Okafor", "Petrov", "Quinn", "Rossi", "Sato", "Tanaka", "Ueda", "Varga", "Weber"]
_CITIES = ["Lisbon", "Oslo", "Nairobi", "Lima", "Hanoi", "Quebec", "Tbilisi", "Perth"]


def synthetic_documents(count: int, sentences: int = 6) -> list[DocumentInput]:
    """``count`` small news-like documents naming people and places, all texts different."""
    documents = []
    for d in range(count):
        lines = []
        for s in range(sentences):
            n = d * sentences + s
            person = f"{_FIRST[n % 10]} {_LAST[(n // 10) % 10]}"
            other = f"{_FIRST[(n + 3) % 10]} {_LAST[(n // 7) % 10]}"
            city = _CITIES[n % len(_CITIES)]
            lines.append(f"On day {n}, {person} met {other} in {city} to sign report {d}-{s}.")
        text = " ".join(lines) + "\n"
        documents.append(DocumentInput(name=f"report-{d:03d}.txt", data=text.encode()))
    return documents
