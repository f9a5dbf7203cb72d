"""Constrained agglomeration: merge along links, but only clusters whose every pair is related."""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["MAX_CLUSTER_MENTIONS", "merge_clusters"]

MAX_CLUSTER_MENTIONS = 500
"""No merge may grow a cluster past this many mentions: a runaway cluster is almost always a
chain of near-misses, and it would cost quadratic checks. One name's mentions are never split."""

Related = Callable[[int, int], bool]


class _Clusters:
    """Disjoint node sets with their mention counts."""

    def __init__(self, sizes: Sequence[int]) -> None:
        self.members: dict[int, list[int]] = {i: [i] for i in range(len(sizes))}
        self.sizes = dict(enumerate(sizes))
        self.owner = list(range(len(sizes)))

    def join(self, keep: int, drop: int) -> None:
        for node in self.members[drop]:
            self.owner[node] = keep
        self.members[keep].extend(self.members.pop(drop))
        self.sizes[keep] += self.sizes.pop(drop)


def merge_clusters(
    sizes: Sequence[int],
    links: Sequence[tuple[int, int]],
    related: Related,
    *,
    cap: int = MAX_CLUSTER_MENTIONS,
) -> list[list[int]]:
    """Cluster nodes by applying ``links`` in order under complete linkage.

    Plain transitive closure would let A~B and B~C put A with C even when A and C contradict each
    other ("J. Smith" between "John Smith" and "Jane Smith"); here a link joins two clusters only
    if ``related`` holds for every cross pair, so the earlier (stronger) link wins.

    Args:
        sizes: Mention count of each node; nodes are ``0 .. len(sizes) - 1``.
        links: Node pairs in the order to try them, strongest evidence first.
        related: Whether two nodes may share a cluster; called at most once per pair.
        cap: Largest cluster (in mentions) a merge may produce.

    Returns:
        The clusters as sorted node lists, ordered by their smallest node.
    """
    clusters = _Clusters(sizes)
    seen: dict[tuple[int, int], bool] = {}

    def ok(x: int, y: int) -> bool:
        pair = (x, y) if x < y else (y, x)
        if pair not in seen:
            seen[pair] = related(*pair)
        return seen[pair]

    for a, b in links:
        keep, drop = sorted((clusters.owner[a], clusters.owner[b]))
        if keep == drop or clusters.sizes[keep] + clusters.sizes[drop] > cap:
            continue
        if all(ok(x, y) for x in clusters.members[keep] for y in clusters.members[drop]):
            clusters.join(keep, drop)
    return sorted(sorted(members) for members in clusters.members.values())
