"""Resolution quality on a gold corpus: the resolver alone, end to end, and two baselines.

Every topic of the corpus arrives as one batch (in-batch resolution), and the batches are merged
one after another into one registry, in a scratch database. Scores are B-cubed and pairwise
precision, recall and F1 over the gold named HUM/LOC/NON mentions of the whole corpus: clusters
are never cut by topic, so a wrong merge across topics costs precision. The gold is used only
for scoring.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from knowledge_assets.db import tables as t
from knowledge_assets.db.scratch import scratch_engine
from knowledge_assets.evaluation.errors import error_classes
from knowledge_assets.evaluation.gold import (
    GoldMention,
    doc_paths,
    gold_doc_id,
    load_gold_mentions,
    named_entity_mentions,
)
from knowledge_assets.pipeline.documents import read_paths
from knowledge_assets.pipeline.mention_records import MentionRecord, resolve_records
from knowledge_assets.pipeline.ontology import Ontology, load_ontology
from knowledge_assets.pipeline.pipeline import ExtractionPipeline
from knowledge_assets.pipeline.registry import canonical_of, merge_new_batches
from knowledge_assets.pipeline.resolution.ablation import ALL_ON, Rule
from knowledge_assets.pipeline.resolution.evaluate import b_cubed, pairwise
from knowledge_assets.settings import Settings

__all__ = [
    "Run",
    "baseline_head",
    "evaluate_resolution",
    "exact_key",
    "head_key",
    "named_gold",
    "resolve_gold",
    "scores",
    "topic_order",
]

Clusters = dict[str, str]
"""Gold item id -> predicted cluster id."""


def _plain(text: str) -> list[str]:
    """Baseline normalisation: case-folded words without possessives or punctuation."""
    words = re.sub(r"['\u2019]s\b|['\u2019]", "", text.casefold())
    return re.sub(r"[^\w]+", " ", words).split()


def exact_key(text: str, label: str) -> str:
    """Baseline 1: same label and same plain normalised name."""
    return f"{label}|{' '.join(_plain(text))}"


def head_key(text: str, label: str) -> str:
    """Baseline 2: same label and same last word ("Tara Reid" ~ "Reid")."""
    words = _plain(text)
    return f"{label}|{words[-1] if words else text}"


def evaluate_resolution(
    root: Path,
    settings: Settings,
    *,
    end_to_end: bool = True,
    one_batch: bool = False,
    without: frozenset[Rule] = ALL_ON,
    errors: int = 0,
) -> dict[str, Any]:
    """Scores of the resolver and the baselines on gold mentions, and end to end if asked.

    Args:
        root: The corpus, in the ecbplus-dev format.
        settings: The database server and the resolution threshold.
        end_to_end: Also run the documents through the offline pipeline.
        one_batch: Resolve the resolver-alone run as one batch of every document, as
            ``knowledge resolve`` does without ``--batch-field``, instead of a batch per topic.
        without: Rules to turn off for the resolver-alone run (``resolution.ablation``).
        errors: Also report where the resolver alone loses points (``errors``), listing this
            many of the heaviest wrong and missed merges; 0 for none.
    """
    gold = named_gold(root)
    truth = {str(i): g.chain for i, g in enumerate(gold)}
    ontology = load_ontology(settings.ontology)
    began = time.perf_counter()
    run = Run(ontology, settings, settings.resolution_threshold, without, one_batch)
    predicted = resolve_gold(gold, run)
    report: dict[str, Any] = {
        "gold_named_mentions": len(gold),
        "gold_chains": len(set(truth.values())),
        "batches": 1 if one_batch else len({g.topic for g in gold}),
        "without": sorted(without),
        "resolver_alone": scores(truth, predicted),
        "baseline_exact": scores(truth, _baseline(gold, exact_key)),
        "baseline_head": scores(truth, _baseline(gold, head_key)),
    }
    report["resolver_alone_seconds"] = round(time.perf_counter() - began, 2)
    if errors:
        report["resolver_alone_errors"] = error_classes(gold, predicted, errors)
    if end_to_end:
        report.update(_end_to_end(root, gold, truth, ontology, settings))
    return report


def named_gold(root: Path) -> list[GoldMention]:
    """The corpus's gold named HUM/LOC/NON mentions: what resolution is scored on."""
    return named_entity_mentions(load_gold_mentions(root))


def scores(truth: Mapping[str, str], predicted: Mapping[str, str]) -> dict[str, Any]:
    """B-cubed and pairwise scores, rounded, of the gold items' predicted clusters."""
    return {
        "b_cubed": {k: round(v, 4) for k, v in asdict(b_cubed(truth, predicted)).items()},
        "pairwise": {k: round(v, 4) for k, v in asdict(pairwise(truth, predicted)).items()},
    }


def topic_order(topic: str) -> tuple[int, str]:
    """Sort key putting topics in numeric order ("2" before "10")."""
    return len(topic), topic


def _by_topic(gold: Sequence[GoldMention]) -> list[list[int]]:
    """Indices of the gold mentions of each topic, topics in numeric order."""
    topics: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(gold):
        topics[g.topic].append(i)
    return [topics[k] for k in sorted(topics, key=topic_order)]


@dataclass(frozen=True)
class Run:
    """How to resolve gold mentions.

    The ontology, the database server, the threshold, the rules turned off, and whether all
    documents form one batch rather than a batch per topic.
    """

    ontology: Ontology
    settings: Settings
    threshold: float
    without: frozenset[Rule] = ALL_ON
    one_batch: bool = False


def resolve_gold(gold: Sequence[GoldMention], run: Run) -> Clusters:
    """The gold mentions resolved as ``knowledge resolve`` would, in a scratch database.

    Each topic is one batch, merged into the registry in topic order (or, with
    ``run.one_batch``, all of them form one batch). Returns gold item id (its index in
    ``gold``, as text) -> canonical entity id.
    """
    records = [MentionRecord(g.doc_id, g.start, g.end, g.text, g.type) for g in gold]
    groups = [list(range(len(gold)))] if run.one_batch else _by_topic(gold)
    batches = [[records[i] for i in group] for group in groups]
    with scratch_engine(run.settings, prefix="ka_eval") as engine:
        canonical = resolve_records(
            engine, run.ontology, batches, threshold=run.threshold, without=run.without
        )
    return {str(i): canonical[r.id] for i, r in enumerate(records)}


def baseline_head(gold: Sequence[GoldMention]) -> Clusters:
    """The head-match baseline's clusters of the gold mentions."""
    return _baseline(gold, head_key)


def _baseline(gold: Sequence[GoldMention], key: Callable[[str, str], str]) -> Clusters:
    return {str(i): key(g.text, g.type) for i, g in enumerate(gold)}


Extracted = tuple[int, int, str, str, str]
"""(start, end, text, label, canonical id) of one extracted mention."""


def _end_to_end(
    root: Path,
    gold: Sequence[GoldMention],
    truth: Mapping[str, str],
    ontology: Ontology,
    settings: Settings,
) -> dict[str, Any]:
    """The offline pipeline over the documents, topic by topic, then the registry.

    Scored on the gold mentions an extracted mention overlaps; the others count as singletons.
    """
    began = time.perf_counter()
    extracted = _extract(root, gold, ontology, settings)
    aligned = {str(i): best for i, g in enumerate(gold) if (best := _align(g, extracted))}
    resolver = {i: m[4] for i, m in aligned.items()}
    exact = {i: exact_key(m[2], m[3]) for i, m in aligned.items()}
    head = {i: head_key(m[2], m[3]) for i, m in aligned.items()}
    # What a perfect resolver would score on these extracted mentions: the gold chain for every
    # aligned mention, a singleton for every missed one. A ceiling, never an input.
    ceiling = {i: truth[i] for i in aligned}
    return {
        "end_to_end_aligned_mentions": len(aligned),
        "end_to_end_ceiling": scores(truth, ceiling),
        "end_to_end_resolver": scores(truth, resolver),
        "end_to_end_baseline_exact": scores(truth, exact),
        "end_to_end_baseline_head": scores(truth, head),
        "end_to_end_seconds": round(time.perf_counter() - began, 2),
    }


def _extract(
    root: Path, gold: Sequence[GoldMention], ontology: Ontology, settings: Settings
) -> dict[str, list[Extracted]]:
    """Extracted mentions of every document, by document name, with their canonical ids."""
    topic_of = {g.doc_id: g.topic for g in gold}
    paths: dict[str, list[Path]] = defaultdict(list)
    for path in doc_paths(root):
        paths[topic_of.get(path.stem, "")].append(path)
    with scratch_engine(settings, prefix="ka_eval") as engine:
        pipeline = ExtractionPipeline(settings, engine=engine, ontology=ontology)
        try:
            for topic in sorted(paths, key=topic_order):
                items, _ = read_paths(paths[topic], max_bytes=settings.max_document_bytes)
                pipeline.run(items)
        finally:
            pipeline.close()
        merge_new_batches(engine, ontology, threshold=settings.resolution_threshold)
        return _extracted_rows(engine)


def _extracted_rows(engine: sa.Engine) -> dict[str, list[Extracted]]:
    canonical = canonical_of(engine)
    m, d = t.mentions.c, t.documents.c
    query = sa.select(d.name, m.start, m.end, m.text, m.label, m.entity_id).join(
        t.documents, d.id == m.document_id
    )
    found: dict[str, list[Extracted]] = defaultdict(list)
    with engine.connect() as connection:
        for name, start, end, text, label, entity in connection.execute(query):
            found[gold_doc_id(name)].append(
                (start, end, text, label, canonical.get(entity, entity))
            )
    return found


def _align(gold: GoldMention, extracted: Mapping[str, list[Extracted]]) -> Extracted | None:
    """The extracted mention overlapping the gold span most (ties: the earlier one)."""
    best: tuple[int, Extracted] | None = None
    for mention in extracted.get(gold.doc_id, ()):
        overlap = min(gold.end, mention[1]) - max(gold.start, mention[0])
        if overlap > 0 and (best is None or overlap > best[0]):
            best = (overlap, mention)
    return best[1] if best else None
