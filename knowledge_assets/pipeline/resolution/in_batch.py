"""In-batch entity resolution: cluster a batch's mentions into entities, deterministically."""

from __future__ import annotations

from collections.abc import Sequence

from knowledge_assets.pipeline.models import Entity, Mention
from knowledge_assets.pipeline.ontology import Ontology
from knowledge_assets.pipeline.resolution.ablation import ALL_ON, Rule
from knowledge_assets.pipeline.resolution.adjudication import UNCERTAIN_BAND, Adjudicator
from knowledge_assets.pipeline.resolution.anchors import anchor_nodes
from knowledge_assets.pipeline.resolution.candidates import candidate_pairs
from knowledge_assets.pipeline.resolution.clustering import merge_clusters
from knowledge_assets.pipeline.resolution.context import SharedContext
from knowledge_assets.pipeline.resolution.entities import assign, build_entities
from knowledge_assets.pipeline.resolution.labels import LabelRules
from knowledge_assets.pipeline.resolution.nodes import NameNode, build_nodes
from knowledge_assets.pipeline.resolution.rules import Link, PairRules, Tier, conflict

__all__ = ["resolve_entities"]


def _ranked_links(
    nodes: Sequence[NameNode],
    rules: PairRules,
    pairs: Sequence[tuple[int, int]],
    anchored: Sequence[tuple[int, int]],
    labels: LabelRules,
) -> dict[tuple[int, int], Link]:
    """Links, strongest first: document ties, exact, acronym, person, part, fuzzy by score.

    Within a tier and score, the pair with more mentions goes first: "Chiefs" is part of both
    "Kansas City Chiefs" (ten mentions) and a stray "Chiefs WR Terrance Copper" (four), and
    complete linkage lets it join only one of them. A part whose tag fits its longer name's
    scores above one a guard lets in despite its tag ("Horton" a person before "Horton" an
    organisation, beside "Zurana Horton"), so the mis-tagged one cannot block it.
    """
    found: list[tuple[Link, tuple[int, int]]] = []
    for i, j in anchored:
        fits = labels.compatible(nodes[i].label, nodes[j].label)
        found.append((Link(Tier.DOCUMENT, 1.0 if fits else 0.5), (i, j)))
    for i, j in pairs:
        link = rules.link(nodes[i], nodes[j])
        if link is not None:
            found.append((link, (i, j)))
    found.sort(key=lambda item: (item[0].tier, -item[0].score, -_mentions(nodes, item[1]), item[1]))
    return {pair: link for link, pair in found}


def _anchored(
    nodes: list[NameNode], labels: LabelRules, without: frozenset[Rule]
) -> tuple[list[NameNode], list[tuple[int, int]]]:
    """The nodes split by the longer names their documents tie them to (``anchors``)."""
    if Rule.ANCHORS in without:
        return nodes, []
    stray, full = Rule.STRAY_TAGS in without, Rule.FULL_NAMES not in without
    return anchor_nodes(
        nodes, lambda a, b: conflict(labels, a, b, stray_tags=stray, full_names=full)
    )


def _mentions(nodes: Sequence[NameNode], pair: tuple[int, int]) -> int:
    return nodes[pair[0]].size + nodes[pair[1]].size


def resolve_entities(
    mentions: Sequence[Mention],
    ontology: Ontology,
    *,
    threshold: float = 0.9,
    adjudicator: Adjudicator | None = None,
    without: frozenset[Rule] = ALL_ON,
) -> tuple[tuple[Entity, ...], tuple[Mention, ...]]:
    """Cluster one batch's mentions into entities and link each mention to its entity.

    Mentions are grouped by normalised name and (consensus) label; a partial name's group is
    split by the longer name each of its documents ties it to (``anchors``). Groups are then
    merged by a cascade of evidence, strongest first (a part and its document's longer name,
    exact name across compatible types, acronym, person surname, a part of the one longer name
    of the batch, fuzzy similarity, sound-alike spelling, the adjudicator's verdict) under guards
    that never merge different numbers, different full names or incompatible types, and under
    complete linkage so no chain of near-matches joins contradicting names.
    Input order does not matter: the same mentions in any order give the same output.

    Args:
        mentions: The batch's mentions; ``label`` is an ontology class name.
        ontology: Decides which labels may describe one entity and each entity id's root type.
        threshold: Least fuzzy similarity (0-1, rapidfuzz token-sort ratio) for a fuzzy merge.
        adjudicator: Asked about pairs in the uncertain band just below ``threshold``; without
            one such pairs stay apart (and are not even generated as candidates).
        without: Rules to turn off, to measure what each buys (``ablation``).

    Returns:
        The entities sorted by id (``types`` most specific first, the first one primary), and the
        mentions in document order with ``entity_id`` set.
    """
    labels = LabelRules(ontology)
    nodes, anchored = _anchored(build_nodes(mentions, labels), labels, without)
    lowest = threshold - UNCERTAIN_BAND if adjudicator else threshold
    pairs = candidate_pairs(nodes, lowest)
    context = SharedContext(nodes)
    rules = PairRules(nodes, labels, threshold, pairs, adjudicator, context, without)
    links = _ranked_links(nodes, rules, pairs, anchored, labels)

    def related(i: int, j: int) -> bool:
        return (i, j) in links or rules.may_share(nodes[i], nodes[j])

    clusters = merge_clusters([n.size for n in nodes], list(links), related)
    entities, owner = build_entities(clusters, nodes, labels)
    return entities, assign(mentions, owner)
