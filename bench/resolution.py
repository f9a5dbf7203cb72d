"""Resolution cost: the registry merge at 1k-100k entities, and one document of 50,000 names.

**Registry merge**: one batch of 1,000 mentions into registries of 1k, 10k and 100k entities.

The registry is filled in bulk with synthetic canonical entities (names, types, aliases and
blocking keys exactly as merges write them); the batch holds names already registered,
acronyms of them, near spellings and new names. Each merge runs in a transaction that is rolled
back, three times per size; the figure is the median. The target is that the merge at 100k
takes at most twice as long as at 1k: cost bounded by index lookups, not registry size.

**A crowd of names** (issue 16): one 2.6 MB document naming 50,000 different people
(``bench.names``) is extracted, then resolved, each in a fresh process (``bench.crowd``). The
target: resolution takes less time than the extraction did, and peaks under 1 GB.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from knowledge_assets.db.scratch import scratch_engine
from knowledge_assets.pipeline.mention_records import MentionRecord, ingest_batch
from knowledge_assets.pipeline.ontology import load_ontology
from knowledge_assets.pipeline.registry.matching import Matcher
from knowledge_assets.pipeline.registry.merge import RegistryReport, merge_batch
from knowledge_assets.pipeline.registry.profiles import Profile
from knowledge_assets.pipeline.resolution.labels import LabelRules
from knowledge_assets.settings import Settings

SIZES = (1_000, 10_000, 100_000)
MENTIONS = 1_000
REPEATS = 3
TARGET = 2.0

_ONSETS = ["b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]


def _word(rng: random.Random) -> str:
    syllables = rng.randint(2, 3)
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)).title()


def _names(count: int) -> list[tuple[str, str]]:
    """Deterministic (name, type) pairs; the first names are the same for every size."""
    rng = random.Random(7)
    kinds = ["Person", "Organization", "Place"]
    found: dict[str, str] = {}
    while len(found) < count:
        kind = kinds[len(found) % 3]
        words = [_word(rng) for _ in range(2 if kind != "Organization" else 3)]
        found.setdefault(" ".join(words), kind)
    return list(found.items())


def _fill(engine: sa.Engine, names: list[tuple[str, str]], labels: LabelRules) -> None:
    """Bulk-insert canonicals and their keys, as merges would have written them."""
    ids, keys, key_ids = [], [], []
    for n, (name, kind) in enumerate(names):
        canonical = f"can_bench_{n:07d}"
        ids.append(canonical)
        for key in Profile(canonical, name, (kind,), (name,), 3).keys(labels):
            keys.append(key)
            key_ids.append(canonical)
    text_array = ARRAY(sa.Text)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO knowledge.canonical_entities "
                "(id, name, root_type, types, aliases, mention_count, members) "
                "SELECT i, n, k, ARRAY[k], ARRAY[n], 3, 1 FROM unnest(:i, :n, :k) AS r(i, n, k)"
            ).bindparams(
                sa.bindparam("i", type_=text_array),
                sa.bindparam("n", type_=text_array),
                sa.bindparam("k", type_=text_array),
            ),
            {"i": ids, "n": [n for n, _ in names], "k": [k for _, k in names]},
        )
        connection.execute(
            sa.text(
                "INSERT INTO knowledge.canonical_keys (key, canonical_id) "
                "SELECT DISTINCT k, c FROM unnest(:k, :c) AS r(k, c)"
            ).bindparams(sa.bindparam("k", type_=text_array), sa.bindparam("c", type_=text_array)),
            {"k": keys, "c": key_ids},
        )
        connection.execute(sa.text("ANALYZE knowledge.canonical_keys"))
        connection.execute(sa.text("ANALYZE knowledge.canonical_entities"))


def _batch(known: list[tuple[str, str]]) -> list[MentionRecord]:
    """1,000 mentions: registered names, their acronyms and near spellings, and new names."""
    rng = random.Random(11)
    fresh = iter(_names(len(known) + MENTIONS)[len(known) :])
    records = []
    for n in range(MENTIONS):
        name, kind = known[rng.randrange(len(known))]
        roll = rng.random()
        if roll < 0.1 and kind == "Organization":
            name = "".join(w[0] for w in name.split()).upper()
        elif roll < 0.2:
            name = name[:-1] + "e"
        elif roll < 0.5:
            name, kind = next(fresh)
        doc = f"doc{n // 20}"
        records.append(MentionRecord(doc, 100 * n, 100 * n + len(name), name, kind))
    return records


def _timed_merge(engine: sa.Engine, batch_id: str, matcher: Matcher) -> tuple[float, int]:
    """Seconds to merge the batch, inside a transaction rolled back afterwards."""
    report = RegistryReport()
    with engine.connect() as connection:
        transaction = connection.begin()
        began = time.perf_counter()
        merge_batch(connection, batch_id, matcher, report)
        seconds = time.perf_counter() - began
        transaction.rollback()
    return seconds, report.entities


def _measure(size: int, settings: Settings) -> dict[str, Any]:
    ontology = load_ontology()
    labels = LabelRules(ontology)
    names = _names(size)
    with scratch_engine(settings, prefix="ka_bench") as engine:
        _fill(engine, names, labels)
        batch_id, _ = ingest_batch(engine, ontology, _batch(names[:1_000]))
        _timed_merge(engine, batch_id, Matcher(labels))  # warm-up: caches and plans
        times, entities = [], 0
        for _ in range(REPEATS):
            seconds, entities = _timed_merge(engine, batch_id, Matcher(labels))
            times.append(seconds)
    return {"seconds": statistics.median(times), "entities": entities}


CROWD_PEAK_MB = 1024


def _stage(stage: str, path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.crowd", stage, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _crowd() -> dict[str, Any]:
    """Extraction, then resolution, of the 50,000-name document: seconds and peak memory."""
    with tempfile.TemporaryDirectory(prefix="ka-crowd-") as scratch:
        path = Path(scratch) / "crowd.pickle"
        extracted, resolved = _stage("extract", path), _stage("resolve", path)
    met = resolved["seconds"] < extracted["seconds"] and resolved["peak_mb"] < CROWD_PEAK_MB
    return {
        "crowd_mb": round(extracted["bytes"] / 1e6, 2),
        "crowd_mentions": resolved["mentions"],
        "crowd_entities": resolved["entities"],
        "crowd_extract_s": round(extracted["seconds"], 1),
        "crowd_extract_peak_mb": round(extracted["peak_mb"]),
        "crowd_resolve_s": round(resolved["seconds"], 1),
        "crowd_resolve_peak_mb": round(resolved["peak_mb"]),
        "crowd_target": f"resolve_s < extract_s and peak < {CROWD_PEAK_MB} MB",
        "crowd_met": met,
    }


def run() -> dict[str, Any]:
    """Median merge time per registry size and the 100k/1k ratio; the crowd document."""
    settings = Settings()
    results = {size: _measure(size, settings) for size in SIZES}
    ratio = results[SIZES[-1]]["seconds"] / results[SIZES[0]]["seconds"]
    figures: dict[str, Any] = {"benchmark": "resolution", "batch_mentions": MENTIONS}
    figures["batch_entities"] = results[SIZES[0]]["entities"]
    for size in SIZES:
        figures[f"merge_s_at_{size // 1000}k"] = round(results[size]["seconds"], 3)
    figures.update(ratio_100k_over_1k=round(ratio, 3), target=f"<= {TARGET}", met=ratio <= TARGET)
    figures.update(_crowd())
    return figures
