"""Partial names read in their own document: "Hartmann" is the Hartmann its own note names in full.

A bare surname, a first name or a short form ("Kansas City" for "Kansas City Chiefs") points at
the longer name its own document uses. Grouping every "Hartmann" of a batch into one node would
let twenty notes about twenty Hartmanns decide together, and the first full name would take
them all. So before any merge across documents, each mention of a partial name is tied to the
one longer name of its document that contains it (nested forms count as one: "Reid", "Tara
Reid", "actress Tara Reid"), and its node is split by that anchor. A partial whose document
names no such longer name, or several, stays unanchored; only the cascade may link it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from knowledge_assets.pipeline.models import Mention
from knowledge_assets.pipeline.resolution.candidates import MAX_BLOCK
from knowledge_assets.pipeline.resolution.nodes import NameNode
from knowledge_assets.pipeline.resolution.parts import nested, part_of

__all__ = ["Anchored", "anchor_nodes"]

Conflict = Callable[[NameNode, NameNode], bool]

Anchored = tuple[list[NameNode], list[tuple[int, int]]]
"""The nodes after the split, and the pairs (smaller index first) of each anchored node and the
node of its longer name."""


def _richer(node: NameNode) -> tuple[int, int, str]:
    """Orders names by how much they say: more words, then more letters, then the key."""
    return len(node.tokens), len(node.key), node.key


def _edge_index(nodes: Sequence[NameNode], present: Iterable[int]) -> dict[str, list[int]]:
    """Multi-word names by first and by last word: where a part of them must match."""
    index: dict[str, list[int]] = defaultdict(list)
    for i in present:
        tokens = nodes[i].tokens
        if len(tokens) > 1:
            index[f"<{tokens[0]}"].append(i)
            index[f">{tokens[-1]}"].append(i)
    return index


def _referents(
    nodes: Sequence[NameNode], i: int, index: dict[str, list[int]], conflict: Conflict
) -> list[int]:
    """The longer names of ``index`` that name ``i`` may be a short form of.

    A name that ends one longer name and starts another is the first one's short form: in
    "Paul Meyer founded Meyer Freight. Meyer said ...", Meyer is the founder. The head of an
    English name is its last word; a first word is usually a modifier (a place, a founder).
    """
    short = nodes[i]
    if not short.tokens:
        return []
    around = {*index.get(f"<{short.tokens[0]}", ()), *index.get(f">{short.tokens[-1]}", ())}
    if len(around) > MAX_BLOCK:
        return sorted(around)
    longer = [
        j
        for j in sorted(around)
        if _richer(nodes[j]) > _richer(short)
        and part_of(short, nodes[j])
        and not conflict(short, nodes[j])
    ]
    heads = [j for j in longer if nodes[j].tokens[-1] == short.tokens[-1]]
    return heads or longer


def _one(nodes: Sequence[NameNode], longer: list[int]) -> int | None:
    """The richest of ``longer`` if all of them could be one name, else None."""
    if not longer:
        return None
    best = max(longer, key=lambda j: _richer(nodes[j]))
    return best if all(nested(nodes[j], nodes[best]) for j in longer) else None


def _document_anchors(nodes: Sequence[NameNode], conflict: Conflict) -> dict[tuple[int, str], int]:
    """(node, document) -> the node of the longer name that document ties it to."""
    present: dict[str, list[int]] = defaultdict(list)
    for node in nodes:
        for document in sorted({m.document_id for m in node.mentions}):
            present[document].append(node.index)
    anchors = {}
    for document, here in present.items():
        index = _edge_index(nodes, here)
        for i in here:
            found = _one(nodes, _referents(nodes, i, index, conflict))
            if found is not None:
                anchors[i, document] = found
    return anchors


def _ambiguous(nodes: Sequence[NameNode], conflict: Conflict) -> set[int]:
    """Names that end several different longer names of the batch: a surname of namesakes.

    Each document that uses such a name ("Hartmann" in a batch of twenty Hartmanns) alone
    means one of them, not necessarily the one another document means. A word that only starts
    several names ("Brooklyn" of "Brooklyn Bridge" and "Brooklyn Museum") is no such sign.
    """
    index = _edge_index(nodes, range(len(nodes)))
    found = set()
    for i, node in enumerate(nodes):
        longer = _referents(nodes, i, index, conflict)
        heads = [j for j in longer if nodes[j].tokens[-1] == node.tokens[-1]]
        if heads and _one(nodes, heads) is None:
            found.add(i)
    return found


def anchor_nodes(nodes: Sequence[NameNode], conflict: Conflict) -> Anchored:
    """Split each node by the longer name each of its documents ties it to.

    A short form of several longer names of the batch that its document does not decide is
    split by document instead: two notes that both say only "Hartmann" may mean two people.

    Args:
        nodes: The batch's name nodes (``build_nodes``), indexed from 0.
        conflict: The hard guards: a longer name they keep apart is no anchor.

    Returns:
        The new nodes, re-indexed in a deterministic order (an unanchored node keeps its place
        before its anchored parts), and the (anchored node, anchor node) pairs to merge first.
    """
    anchors = _document_anchors(nodes, conflict)
    ambiguous = _ambiguous(nodes, conflict)
    groups: dict[tuple[int, int, str], list[Mention]] = defaultdict(list)
    for node in nodes:
        for mention in node.mentions:
            document = mention.document_id
            anchor = anchors.get((node.index, document), -1)
            alone = document if anchor < 0 and node.index in ambiguous else ""
            groups[node.index, anchor, alone].append(mention)
    order = sorted(groups)
    position = {group: n for n, group in enumerate(order)}
    split = [
        replace(
            nodes[i],
            index=position[i, anchor, alone],
            mentions=tuple(groups[i, anchor, alone]),
            anchor=nodes[anchor].key if anchor >= 0 else "",
            document=alone,
        )
        for i, anchor, alone in order
    ]
    links = set()
    for (i, document), anchor in anchors.items():
        target = (anchor, anchors.get((anchor, document), -1), "")
        if target not in position:
            target = (anchor, -1, document)
        ends = (position[i, anchor, ""], position[target])
        links.add((min(ends), max(ends)))
    return split, sorted(links)
