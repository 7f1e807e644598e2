"""Preparing the clips over a Ray cluster, as Ray tasks, before its trials start.

Nodes are grouped by the cache they see (``msa.data.prepare.cache_id``): nodes on one shared
filesystem form one group and split its missing clips between them; a node with a cache of its
own gets every clip. So each cache ends up holding every clip, decoded once per cache, and no
trial decodes a clip its node already has. Nodes that join later (an autoscaler starting GPU
workers from zero) prepare what they lack at their first trial (``TrialData.ensure_here``).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from itertools import cycle

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tqdm import tqdm

from msa.data.prepare import cache_id, clips_dir, is_prepared
from msa.tune.experiment import DataSource, FoundData

CLIPS_PER_TASK = 4  # small tasks keep every CPU of a node busy until the end


@ray.remote(num_cpus=0)
def _cache_state(source: DataSource, keys: list[str]) -> tuple[str, list[int]]:
    """(this node's cache id, indices of the keys it lacks)."""
    cache = source.node_cache()
    entries = clips_dir(cache)
    return cache_id(cache), [i for i, key in enumerate(keys) if not is_prepared(entries / key)]


@ray.remote(num_cpus=1)
def _prepare_clips(source: DataSource, items: list[dict]) -> tuple[str, int, dict[str, str]]:
    """(this node's id, clips decoded, display -> failure reason)."""
    return (ray.get_runtime_context().get_node_id(), *source.prepare_here(items, workers=1))


def _on(node_id: str) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id, soft=False)


def worker_nodes() -> dict[str, int]:
    """Node id -> CPUs of every live node that can run a task (a head with CPU: 0 cannot)."""
    return {
        node["NodeID"]: int(node["Resources"].get("CPU", 0))
        for node in ray.nodes()
        if node["Alive"] and node["Resources"].get("CPU", 0) >= 1
    }


def prepare_on_cluster(found: FoundData, progress: bool = True) -> tuple[int, dict[str, str], str]:
    """Make every node's cache hold every usable clip -> (clips that some cache lacked, display
    -> failure reason, a line saying where and how many decodings that took)."""
    nodes = worker_nodes()
    if not nodes:
        return 0, {}, "no Ray node has CPUs yet: each node prepares its clips at its first trial"
    keys = [item["key"] for item in found.items]
    states = ray.get([_cache_state.options(scheduling_strategy=_on(node)).remote(found.source, keys) for node in nodes])
    groups: dict[str, list[str]] = defaultdict(list)
    missing: dict[str, list[int]] = {}
    for node, (cache, lacking) in zip(nodes, states):
        groups[cache].append(node)
        missing[cache] = lacking

    tasks = []
    for cache, members in groups.items():
        slots = cycle([node for node in members for _ in range(nodes[node])])  # spread by CPUs
        lacking = missing[cache]
        for start in range(0, len(lacking), CLIPS_PER_TASK):
            chunk = [found.items[i] for i in lacking[start : start + CLIPS_PER_TASK]]
            tasks.append(_prepare_clips.options(scheduling_strategy=_on(next(slots))).remote(found.source, chunk))

    per_node: dict[str, int] = dict.fromkeys(nodes, 0)
    failed: dict[str, str] = {}
    bar = tqdm(total=len(tasks), desc="preparing clips on the cluster", unit="task", disable=not progress, file=sys.stderr)
    pending = tasks
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        node, count, failures = ray.get(done[0])
        per_node[node] += count
        failed.update(failures)
        bar.update()
    bar.close()
    decoded = len({i for lacking in missing.values() for i in lacking}) - len(failed)
    caches = "one cache shared by" if len(groups) == 1 else f"{len(groups)} separate caches on"
    where = (
        f"cluster preparation: {sum(per_node.values())} clips decoded by {len(tasks)} Ray tasks; {caches} "
        f"{len(nodes)} nodes; per node: {', '.join(f'{node[:8]} {count}' for node, count in per_node.items())}"
    )
    return decoded, failed, where
