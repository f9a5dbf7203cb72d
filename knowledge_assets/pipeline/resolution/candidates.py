"""Blocking: the few node pairs worth comparing, instead of all n² of them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import combinations

import numpy as np
from jellyfish import metaphone
from rapidfuzz import fuzz, process

from knowledge_assets.pipeline.resolution.nodes import NameNode
from knowledge_assets.pipeline.resolution.normalize import STOP_WORDS, acronym_variants

__all__ = ["MAX_BLOCK", "candidate_pairs"]

PREFIX = 3
"""Nodes sharing the first letters of any word are compared, so typos after them still meet."""

MAX_BLOCK = 2000
"""A fuzzy block larger than this is a non-distinctive prefix; comparing it all is skipped."""

Pair = tuple[int, int]


def _pairs(members: Sequence[int]) -> Iterable[Pair]:
    return combinations(sorted(set(members)), 2)


def _bucket_pairs(buckets: dict[str, list[int]]) -> set[Pair]:
    return {pair for members in buckets.values() for pair in _pairs(members)}


def _exact_pairs(nodes: Sequence[NameNode]) -> set[Pair]:
    """Same key, different labels (same key and label is already one node)."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for node in nodes:
        by_key[node.key].append(node.index)
    return _bucket_pairs(by_key)


def _acronym_pairs(nodes: Sequence[NameNode]) -> set[Pair]:
    """Capitalised one-word names against the names whose initials they spell."""
    expansions: dict[str, list[int]] = defaultdict(list)
    for node in nodes:
        for initials in acronym_variants(node.tokens):
            expansions[initials].append(node.index)
    return {
        (min(node.index, other), max(node.index, other))
        for node in nodes
        if node.acronym_like
        for other in set(expansions.get(node.key, ()))
    }


def _person_pairs(nodes: Sequence[NameNode]) -> set[Pair]:
    """Full names sharing surname and first initial, and bare surnames with their full names.

    Compatible first names always share their initial ("J", "John", "Johnny"), so blocking on it
    loses nothing and keeps a common surname from producing quadratic pairs.
    """
    blocks: dict[str, list[int]] = defaultdict(list)
    full: dict[str, list[int]] = defaultdict(list)
    for node in nodes:
        if node.surname:
            blocks[f"{node.surname} {node.given[0]}"].append(node.index)
            full[node.surname].append(node.index)
    found = _bucket_pairs(blocks)
    for node in nodes:
        if node.person and not node.surname:
            found.update((min(node.index, i), max(node.index, i)) for i in full.get(node.key, ()))
    return found


def _part_pairs(live: Sequence[NameNode], nodes: Sequence[NameNode]) -> set[Pair]:
    """Names against the longer names sharing their first or last word ("Reid", "Tara Reid").

    An edge word shared by more than ``MAX_BLOCK`` names ("new", "united") says nothing and is
    skipped, so a huge batch never compares all its names pairwise.
    """
    by_edge: dict[str, list[int]] = defaultdict(list)
    for node in live:
        if len(node.tokens) > 1:
            for edge in _edges(node):
                by_edge[edge].append(node.index)
    found: set[Pair] = set()
    for node in live:
        for edge in _edges(node):
            members = by_edge.get(edge, ())
            if len(members) > MAX_BLOCK:
                continue
            found.update(
                (min(node.index, i), max(node.index, i))
                for i in members
                if i != node.index and len(nodes[i].tokens) >= len(node.tokens)
            )
    return found


def _edges(node: NameNode) -> set[str]:
    return {f"<{node.tokens[0]}", f">{node.tokens[-1]}"} if node.tokens else set()


def _sound_pairs(nodes: Sequence[NameNode]) -> set[Pair]:
    """Names whose words sound alike, word for word ("Bettie Page", "Betty Page")."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for node in nodes:
        if node.tokens:
            blocks[" ".join(t[0] + metaphone(t) for t in node.tokens)].append(node.index)
    return {
        pair for members in blocks.values() if len(members) <= MAX_BLOCK for pair in _pairs(members)
    }


def _fuzzy_pairs(
    live: Sequence[NameNode], nodes: Sequence[NameNode], threshold: float
) -> set[Pair]:
    """Pairs whose whole-name similarity reaches the threshold, among nodes sharing a prefix."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for node in live:
        for token in set(node.tokens) - STOP_WORDS:
            blocks[token[:PREFIX]].append(node.index)
    found: set[Pair] = set()
    for members in blocks.values():
        if 1 < len(members) <= MAX_BLOCK:
            found |= _similar_within(nodes, sorted(set(members)), threshold)
    return found


def _similar_within(nodes: Sequence[NameNode], members: list[int], threshold: float) -> set[Pair]:
    keys = [nodes[i].key for i in members]
    scores = process.cdist(
        keys, keys, scorer=fuzz.token_sort_ratio, score_cutoff=threshold * 100.0, dtype=np.float32
    )
    rows, cols = np.nonzero(np.triu(scores, k=1))
    return {(members[r], members[c]) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)}


def candidate_pairs(nodes: Sequence[NameNode], threshold: float) -> list[Pair]:
    """Every pair any rule could link, as sorted ``(i, j)`` node indices with ``i < j``.

    Names their documents settled and that no rule links (``NameNode.linkable``) are left
    out: a surname confined to each of a hundred documents would otherwise pair with
    everything a hundred times.
    """
    live = [node for node in nodes if node.linkable]
    found = _exact_pairs(live) | _acronym_pairs(live) | _person_pairs(live)
    found |= _part_pairs(live, nodes) | _sound_pairs(live)
    return sorted(found | _fuzzy_pairs(live, nodes, threshold))
