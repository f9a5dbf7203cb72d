"""Shared context: whether the documents of two names talk about the same things.

A one-word start of a name whose own document names nothing longer ("France" alone) may be the
longer name another document uses ("France Telecom"), but only if the two documents are about
the same story. In a batch of one topic they are; in a batch that mixes unrelated documents,
"France" in a report on a summit is not the telephone company of a report on cables. Documents
about one story name the same other people, places and organisations, so the test is that some
document of each name mentions a third name in common.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from knowledge_assets.pipeline.resolution.nodes import NameNode

__all__ = ["SharedContext"]


class SharedContext:
    """The names each document of a batch mentions, to compare two names' documents."""

    def __init__(self, nodes: Sequence[NameNode]) -> None:
        self._names: dict[str, set[str]] = defaultdict(set)
        for node in nodes:
            for mention in node.mentions:
                self._names[mention.document_id].add(node.key)
        self._around: dict[int, frozenset[str]] = {}

    def shared(self, a: NameNode, b: NameNode) -> bool:
        """Some document of ``a`` and some document of ``b`` name a third thing in common.

        Names made only of the two names' own words do not count: "Reid" beside "Tara Reid"
        says nothing about whether the documents share a story.
        """
        own = set(a.tokens) | set(b.tokens)
        common = self._context(a) & self._context(b)
        return any(not set(name.split()) <= own for name in common)

    def _context(self, node: NameNode) -> frozenset[str]:
        found = self._around.get(node.index)
        if found is None:
            documents = {m.document_id for m in node.mentions}
            found = frozenset().union(*(self._names[d] for d in documents))
            self._around[node.index] = found
        return found
