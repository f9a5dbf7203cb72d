"""Partial names read in their own document: "Hartmann" is the Hartmann its own note names in full.

A bare surname, a first name or a short form ("Kansas City" for "Kansas City Chiefs") points at
the longer name its own document uses. Grouping every "Hartmann" of a batch into one node would
let twenty notes about twenty Hartmanns decide together, and the first full name would take
them all. So before any merge across documents, each mention of a partial name is tied to the
longer name of its document that contains it (nested forms count as one: "Reid", "Tara Reid",
"actress Tara Reid"; among rivals, the one the document mentions most if it clearly leads),
and its node is split by that tie. Where its document names none, the part follows what the
batch's other documents agree on; a surname the batch's documents give to several people is
kept to each document that uses it alone. Whatever is left untied goes through the cascade.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from knowledge_assets.pipeline.models import Mention
from knowledge_assets.pipeline.resolution.candidates import MAX_BLOCK
from knowledge_assets.pipeline.resolution.nodes import NameNode
from knowledge_assets.pipeline.resolution.parts import nested, part_of

__all__ = ["Anchored", "anchor_nodes"]

Conflict = Callable[[NameNode, NameNode], bool]

DOMINANCE = 2
"""A part is tied to the leading one of rival longer names only if that one weighs more than
this many times the next (mentions in the document, or documents across the batch)."""

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
        return []
    longer = [
        j
        for j in around
        if _richer(nodes[j]) > _richer(short)
        and part_of(short, nodes[j])
        and not conflict(short, nodes[j])
    ]
    heads = [j for j in longer if nodes[j].tokens[-1] == short.tokens[-1]]
    return heads or longer


def _heads(short: NameNode, nodes: Sequence[NameNode], longer: Iterable[int]) -> bool:
    """Whether ``short`` ends the longer names (it is their head), rather than starting them."""
    return any(nodes[j].tokens[-1] == short.tokens[-1] for j in longer)


def _namesakes(nodes: Sequence[NameNode], i: int, longer: Iterable[int]) -> bool:
    """A one-word name that ends several longer names that cannot be one: a shared surname.

    A word that only starts several names ("Brooklyn" of "Brooklyn Bridge" and "Brooklyn
    Museum") is no such sign, nor is a full name inside longer spans ("Bettie Page" in
    "Bettie Mae Page" and "the real Bettie Page").
    """
    short = nodes[i]
    if len(short.tokens) != 1:
        return False
    heads = [j for j in longer if nodes[j].tokens[-1] == short.tokens[-1]]
    return len(_families(nodes, heads)) > 1


def _families(nodes: Sequence[NameNode], longer: Iterable[int]) -> list[list[int]]:
    """Longer names grouped into the ones that could be one name (``nested``), richest first."""
    families: list[list[int]] = []
    for j in sorted(set(longer), key=lambda j: _richer(nodes[j]), reverse=True):
        home = next((f for f in families if nested(nodes[j], nodes[f[0]])), None)
        if home is None:
            families.append([j])
        else:
            home.append(j)
    return families


def _salient(
    nodes: Sequence[NameNode],
    longer: Iterable[int],
    weight: Mapping[int, float],
    prior: float = 0.0,
) -> int | None:
    """The usual name of the one family of longer names that dominates, or None.

    A reader takes a bare "Palin" in a story about Sarah Palin that mentions Todd Palin once to
    be Sarah: a family dominates when its weight is more than ``DOMINANCE`` times the next one's.
    """
    scored = sorted(
        (
            (prior + sum(weight.get(j, 0) for j in family), _usual(nodes, family))
            for family in _families(nodes, longer)
        ),
        key=lambda item: (-item[0], _descending(nodes[item[1]])),
    )
    if not scored or scored[0][0] <= 0:
        return None
    if len(scored) == 1 or scored[0][0] > DOMINANCE * scored[1][0]:
        return scored[0][1]
    return None


def _usual(nodes: Sequence[NameNode], family: list[int]) -> int:
    """The family's most mentioned name, the richest among ties: what a part is tied to.

    Spans that run past a name ("Notorious Bettie Page", a film) are rarer than the name.
    """
    return max(family, key=lambda j: (nodes[j].size, _richer(nodes[j])))


def _descending(node: NameNode) -> tuple[int, int, str]:
    words, letters, key = _richer(node)
    return -words, -letters, key


class _Batch:
    """Where each name of the batch occurs, for reading its parts document by document."""

    def __init__(self, nodes: Sequence[NameNode], conflict: Conflict) -> None:
        self.nodes = nodes
        self.conflict = conflict
        self.present: dict[str, list[int]] = defaultdict(list)
        self.counts_in: dict[str, dict[int, float]] = defaultdict(dict)
        for node in nodes:
            for mention in node.mentions:
                here = self.counts_in[mention.document_id]
                here[node.index] = here.get(node.index, 0) + 1
        for document, here in self.counts_in.items():
            self.present[document] = sorted(here)

    def in_documents(self) -> dict[tuple[int, str], int]:
        """(node, document) -> the longer name that document ties the node to.

        A name that only starts longer names ("Alice" of "Alice Hartmann", "Queens" of
        "Queens Supreme Court") is tied only if no document of the batch uses it without one:
        one that does is a name in its own right (the borough), which documents also use
        as a modifier.
        """
        found: dict[tuple[int, str], list[int]] = {}
        for document, here in self.present.items():
            index = _edge_index(self.nodes, here)
            for i in here:
                found[i, document] = _referents(self.nodes, i, index, self.conflict)
        free = {i for (i, _), longer in found.items() if not longer}
        anchors = {}
        for (i, document), longer in found.items():
            if i in free and not _heads(self.nodes[i], self.nodes, longer):
                continue
            chosen = _salient(self.nodes, longer, self.counts_in[document])
            if chosen is not None:
                anchors[i, document] = chosen
        return anchors

    def across_documents(self, anchors: dict[tuple[int, str], int]) -> dict[int, int | None]:
        """For each name some documents leave untied: what the batch ties it to, or None.

        The documents that do tie it vote; each longer name of the batch it may be part of
        counts once more, so that one document naming "Alice Hartmann" does not outvote an
        "Uwe Hartmann" elsewhere. None marks a one-word name with rival longer names that no
        vote decides (a surname of several people); a full name that is part of several
        longer ones ("Bettie Page", "Bettie Mae Page", "the real Bettie Page") is left to the
        cascade, like a name with no longer name.
        """
        votes: dict[int, dict[int, int]] = defaultdict(dict)
        for (i, _), anchor in anchors.items():
            votes[i][anchor] = votes[i].get(anchor, 0) + 1
        untied = {i for d, here in self.present.items() for i in here if (i, d) not in anchors}
        index = _edge_index(self.nodes, range(len(self.nodes)))
        found: dict[int, int | None] = {}
        for i in sorted(untied):
            longer = _referents(self.nodes, i, index, self.conflict)
            if not longer:
                continue
            cast = votes.get(i, {})
            chosen = _salient(self.nodes, longer, cast, prior=1.0)
            if chosen is not None and cast:
                found[i] = chosen
            elif _namesakes(self.nodes, i, longer):
                found[i] = None
        return found


def anchor_nodes(nodes: Sequence[NameNode], conflict: Conflict) -> Anchored:
    """Split each node by the longer name each of its documents ties it to.

    A partial name its document leaves untied follows what the other documents of the batch
    tie it to, when they agree (``_Batch.across_documents``); a short form of several longer
    names that no vote decides is split by document instead: two notes that each say only
    "Hartmann" may mean two people.

    Args:
        nodes: The batch's name nodes (``build_nodes``), indexed from 0.
        conflict: The hard guards: a longer name they keep apart is no anchor.

    Returns:
        The new nodes, re-indexed in a deterministic order (an unanchored node keeps its place
        before its anchored parts), and the (anchored node, anchor node) pairs to merge first.
    """
    batch = _Batch(nodes, conflict)
    anchors = batch.in_documents()
    adopted = batch.across_documents(anchors)
    for document, here in batch.present.items():
        for i in here:
            chosen = adopted.get(i)
            if (i, document) not in anchors and chosen is not None:
                anchors[i, document] = chosen
    confined = {i for i, chosen in adopted.items() if chosen is None}
    groups: dict[tuple[int, int, str], list[Mention]] = defaultdict(list)
    for node in nodes:
        for mention in node.mentions:
            document = mention.document_id
            anchor = anchors.get((node.index, document), -1)
            alone = document if anchor < 0 and node.index in confined else ""
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
        ends = (position[i, anchor, ""], position[_group_of(anchor, document, anchors, position)])
        links.add((min(ends), max(ends)))
    return split, sorted(links)


def _group_of(
    i: int,
    document: str,
    anchors: Mapping[tuple[int, str], int],
    groups: Mapping[tuple[int, int, str], int],
) -> tuple[int, int, str]:
    """The group of name ``i`` a part tied to it in ``document`` joins.

    Its group in that document if it occurs there, else its unanchored group, else its first.
    """
    anchor = anchors.get((i, document), -1)
    for group in ((i, anchor, ""), (i, -1, document), (i, -1, "")):
        if group in groups:
            return group
    return next(g for g in groups if g[0] == i)
