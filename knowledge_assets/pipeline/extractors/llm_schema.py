"""The JSON Schema an LLM answers in, built from the ontology, and the checks that accept an answer.

LLMs are good at naming things and bad at counting characters, so the schema asks for the mention
text and which occurrence is meant; offsets are computed here by finding that text in the chunk.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

from knowledge_assets.pipeline.models import ChunkExtraction, ExtractedMention, ExtractedRelation

if TYPE_CHECKING:
    from knowledge_assets.pipeline.ontology import Ontology

__all__ = ["SCHEMA_NAME", "AnswerError", "build_schema", "parse_answer"]

SCHEMA_NAME = "chunk_extraction"
_T = TypeVar("_T")
_MAX_REPORTED_ERRORS = 20
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


class AnswerError(ValueError):
    """An answer we cannot use; the message says exactly what is wrong so the model can fix it."""


def build_schema(ontology: Ontology) -> dict[str, Any]:
    """The strict JSON Schema of an answer: mentions typed by class, relations typed by property.

    Every field is required and no extra field is allowed, because OpenAI's strict structured
    output accepts only such schemas; optional values are spelled as a union with ``null``.
    """
    mention = _object_schema(
        text={"type": "string", "description": "The mention, copied exactly from the text."},
        type=_enum_schema(sorted(ontology.classes), "Ontology class of the mention."),
        occurrence={
            "type": "integer",
            "description": "Which occurrence of this exact text in the document is meant "
            "(1 = first; use 1 when it occurs once).",
        },
    )
    relation = _object_schema(
        subject={"type": "integer", "description": "0-based index of the subject in mentions."},
        predicate=_enum_schema(sorted(ontology.properties), "Ontology property."),
        object={
            "type": ["integer", "null"],
            "description": "0-based index of the object in mentions; null for a literal value.",
        },
        object_literal={
            "type": ["string", "null"],
            "description": "The literal value of a datatype property; null otherwise.",
        },
    )
    return _object_schema(
        mentions={"type": "array", "items": mention},
        relations={"type": "array", "items": relation},
    )


def parse_answer(content: str, chunk_text: str, ontology: Ontology) -> ChunkExtraction:
    """Check an answer against the schema, the chunk and the ontology, and place its mentions.

    Raises:
        AnswerError: listing every problem found (up to a limit), one per line.
    """
    data = _load_object(content)
    problems: list[str] = []
    mentions = [
        _collect(problems, _mention, f"mentions[{i}]", raw, chunk_text, ontology)
        for i, raw in enumerate(_array(data, "mentions"))
    ]
    relations = [
        _collect(problems, _relation, f"relations[{i}]", raw, mentions, chunk_text, ontology)
        for i, raw in enumerate(_array(data, "relations"))
    ]
    if problems:
        shown = problems[:_MAX_REPORTED_ERRORS]
        more = len(problems) - len(shown)
        raise AnswerError("\n".join(shown + ([f"... and {more} more"] if more else [])))
    return ChunkExtraction(
        mentions=tuple(m for m in mentions if m is not None),
        relations=tuple(r for r in relations if r is not None),
    )


def _object_schema(**properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _enum_schema(names: list[str], description: str) -> dict[str, Any]:
    # An empty enum is not a valid schema; an ontology without properties still yields one.
    if not names:
        return {"type": "string", "description": description}
    return {"type": "string", "enum": names, "description": description}


def _load_object(content: str) -> dict[str, Any]:
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise AnswerError(f"the answer is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise AnswerError(f"the answer must be a JSON object, not {_kind(data)}")
    unknown = sorted(set(data) - {"mentions", "relations"})
    if unknown:
        raise AnswerError(f"the answer has unknown fields: {', '.join(unknown)}")
    return data


def _array(data: dict[str, Any], field: str) -> list[Any]:
    value = data.get(field)
    if not isinstance(value, list):
        raise AnswerError(f"the answer's '{field}' must be an array, not {_kind(value)}")
    return value


def _collect(problems: list[str], check: Callable[..., _T], where: str, *args: Any) -> _T | None:
    try:
        return check(*args)
    except AnswerError as error:
        problems.append(f"{where}: {error}")
        return None


def _mention(raw: Any, chunk_text: str, ontology: Ontology) -> ExtractedMention:
    item = _item(raw, {"text", "type", "occurrence"})
    text = item.get("text")
    if not isinstance(text, str) or not text.strip():
        raise AnswerError("'text' must be a non-empty string")
    label = item.get("type")
    if not isinstance(label, str) or label not in ontology.classes:
        raise AnswerError(f"type {label!r} is not an ontology class ({_names(ontology.classes)})")
    occurrence = item.get("occurrence")
    occurrence = 1 if occurrence is None else occurrence
    if not _is_int(occurrence) or occurrence < 1:
        raise AnswerError(f"'occurrence' must be an integer >= 1, not {occurrence!r}")
    start, end = _locate(text, chunk_text, occurrence)
    return ExtractedMention(start=start, end=end, text=chunk_text[start:end], label=label)


def _relation(
    raw: Any,
    mentions: list[ExtractedMention | None],
    chunk_text: str,
    ontology: Ontology,
) -> ExtractedRelation:
    item = _item(raw, {"subject", "predicate", "object", "object_literal"})
    subject = _index(item, "subject", mentions)
    predicate = item.get("predicate")
    if not isinstance(predicate, str) or predicate not in ontology.properties:
        known = _names(ontology.properties)
        raise AnswerError(f"predicate {predicate!r} is not an ontology property ({known})")
    prop = ontology.properties[predicate]
    _check_types(predicate, "domain", mentions[subject], prop.domain, ontology)
    obj: int | None = None
    literal: str | None = None
    if prop.kind == "object":
        obj = _object_index(item, predicate, mentions)
        _check_types(predicate, "range", mentions[obj], prop.range, ontology)
    else:
        literal = _literal(item, predicate)
    spans = [mentions[subject], None if obj is None else mentions[obj]]
    start, end = _evidence(spans, literal, chunk_text)
    return ExtractedRelation(
        subject=subject,
        predicate=predicate,
        object=obj,
        object_literal=literal,
        start=start,
        end=end,
    )


def _item(raw: Any, fields: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise AnswerError(f"must be an object, not {_kind(raw)}")
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise AnswerError(f"unknown fields: {', '.join(unknown)}")
    return raw


def _index(item: dict[str, Any], field: str, mentions: list[Any]) -> int:
    value = item.get(field)
    if not _is_int(value) or not 0 <= value < len(mentions):
        raise AnswerError(
            f"'{field}' must index mentions (0 to {len(mentions) - 1}), not {value!r}"
            if mentions
            else f"'{field}' is {value!r} but there are no mentions"
        )
    return value


def _object_index(item: dict[str, Any], predicate: str, mentions: list[Any]) -> int:
    if item.get("object_literal") is not None:
        raise AnswerError(f"{predicate} relates two entities: set 'object', not 'object_literal'")
    if item.get("object") is None:
        raise AnswerError(f"{predicate} relates two entities: 'object' must index mentions")
    return _index(item, "object", mentions)


def _literal(item: dict[str, Any], predicate: str) -> str:
    if item.get("object") is not None:
        raise AnswerError(f"{predicate} has a literal value: set 'object_literal', not 'object'")
    value = item.get("object_literal")
    if not isinstance(value, str) or not value.strip():
        raise AnswerError(f"{predicate} has a literal value: 'object_literal' must be non-empty")
    return value.strip()


def _check_types(
    predicate: str,
    role: str,
    mention: ExtractedMention | None,
    allowed: tuple[str, ...],
    ontology: Ontology,
) -> None:
    # A mention that failed its own checks is reported there; checking it again adds only noise.
    if mention is None or not allowed:
        return
    if not any(cls in ontology.ancestors(mention.label) for cls in allowed):
        subject = "subject" if role == "domain" else "object"
        raise AnswerError(
            f"{predicate} needs a {subject} of type {' or '.join(allowed)}, "
            f"but {mention.text!r} is a {mention.label}"
        )


def _evidence(
    spans: list[ExtractedMention | None], literal: str | None, chunk_text: str
) -> tuple[int, int]:
    ranges = [(m.start, m.end) for m in spans if m is not None]
    if literal is not None:
        ranges.extend(_occurrences(literal, chunk_text)[:1])
    if not ranges:
        return 0, 0
    return min(s for s, _ in ranges), max(e for _, e in ranges)


def _locate(text: str, chunk_text: str, occurrence: int) -> tuple[int, int]:
    found = _occurrences(text, chunk_text)
    if not found:
        raise AnswerError(f"text {text!r} does not occur in the document text")
    if occurrence > len(found):
        raise AnswerError(
            f"'occurrence' is {occurrence} but {text!r} occurs only {len(found)} time(s)"
        )
    return found[occurrence - 1]


def _occurrences(text: str, chunk_text: str) -> list[tuple[int, int]]:
    r"""Where ``text`` occurs, tolerating re-spaced whitespace (models flatten line breaks).

    Whole-word matches win when there are any, so "Ann" does not count the "Ann" inside "Anna".
    The same matches as ``re.finditer`` with the words joined by ``\s+`` (and ``(?<!\w)``,
    ``(?!\w)`` around them for whole words), found with ``str.find``: every mention of every
    answer is located, and compiling two patterns per mention was a third of the client's CPU per
    answer at 32 requests in flight.
    """
    words = text.split()
    if not words:
        return []  # a blank mention is refused before it is located
    loose = list(_matches(words, chunk_text, whole=False))
    whole = list(_matches(words, chunk_text, whole=True))
    return whole or loose


def _matches(words: list[str], chunk_text: str, *, whole: bool) -> Iterator[tuple[int, int]]:
    """Non-overlapping matches of the words separated by whitespace, leftmost first."""
    position = 0
    while (found := _next_match(words, chunk_text, position)) is not None:
        start, end = found
        if whole and not _word_bounded(chunk_text, start, end):
            position = start + 1
            continue
        yield start, end
        position = end


def _next_match(words: list[str], chunk_text: str, position: int) -> tuple[int, int] | None:
    """The leftmost match at or after ``position``.

    Each word after the first starts with a non-space character, so the whitespace before it can
    only be consumed whole: a match, where there is one, is unique at its start.
    """
    first = words[0]
    while (start := chunk_text.find(first, position)) >= 0:
        end = _rest_matches(words, chunk_text, start + len(first))
        if end is not None:
            return start, end
        position = start + 1
    return None


def _rest_matches(words: list[str], chunk_text: str, end: int) -> int | None:
    size = len(chunk_text)
    for word in words[1:]:
        after = end
        while after < size and chunk_text[after].isspace():
            after += 1
        if after == end or not chunk_text.startswith(word, after):
            return None
        end = after + len(word)
    return end


def _word_bounded(chunk_text: str, start: int, end: int) -> bool:
    r"""No word character (``\w``: alphanumeric or ``_``) just before or just after the match."""
    before = start > 0 and _is_word_char(chunk_text[start - 1])
    after = end < len(chunk_text) and _is_word_char(chunk_text[end])
    return not (before or after)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _names(names: Any) -> str:
    listed = sorted(names)
    return "expected one of: " + ", ".join(listed[:30]) + (", ..." if len(listed) > 30 else "")
