"""Preparing clips and frozen-prefix features over a Ray cluster, as Ray tasks, before its
trials start.

Nodes are grouped by the cache they see (``msa.data.prepare.cache_id``): nodes on one shared
filesystem form one group and split its missing work between them; a node with a cache of its
own does all of it. So each cache ends up holding every clip, decoded once per cache, and every
feature table the space's models can use, computed once per cache with a trial's resources (on
GPUs where trials get them); no trial decodes a clip or computes an entry its node already has.
Nodes that join later (an autoscaler starting GPU workers from zero) do what they lack at their
first trial (``TrialData.ensure_here``, ``FeatureTable.compute``), once for the trials on them.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from itertools import cycle

import ray
import torch
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tqdm import tqdm

from msa.data.experiment import ClipItem, DataLocation, FoundData
from msa.data.prepare import cache_id, clips_dir, is_prepared
from msa.features import cache_plan
from msa.models import tiny_overrides
from msa.train import default_device
from msa.trial import FEATURE_BATCH, TrialSettings, build_model, feature_table
from msa.tune.options import ResourceOptions

CLIPS_PER_TASK = 4  # small tasks keep every CPU of a node busy until the end
MIN_FEATURE_SHARE = 16  # clips per feature task at least: each task builds the model once


@ray.remote(num_cpus=0)
def _cache_state(location: DataLocation, keys: list[str]) -> tuple[str, list[int]]:
    """(this node's cache id, indices of the keys it lacks)."""
    cache = location.node_cache()
    entries = clips_dir(cache)
    return cache_id(cache), [i for i, key in enumerate(keys) if not is_prepared(entries / key)]


@ray.remote(num_cpus=1)
def _prepare_clips(location: DataLocation, items: list[ClipItem]) -> tuple[str, int, dict[str, str]]:
    """(this node's id, clips decoded, display -> failure reason)."""
    return (ray.get_runtime_context().get_node_id(), *location.prepare_here(items, workers=1))


def _on(node_id: str) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id, soft=False)


def interleaved(slots: dict[str, int]) -> list[str]:
    """Node ids, each as often as its slots, taking turns: [a, b, a, b, a] for {a: 3, b: 2}."""
    return [
        node
        for turn in range(max(slots.values(), default=0))
        for node, count in slots.items()
        if turn < count
    ]


def as_completed(tasks: list, desc: str, progress: bool):
    """Each task's result as it finishes, with a progress bar of the tasks done."""
    with tqdm(total=len(tasks), desc=desc, unit="task", disable=not progress, file=sys.stderr) as bar:
        pending = tasks
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
            bar.update()


def worker_nodes() -> dict[str, int]:
    """Node id -> CPUs of every live node that can run a task (a head with CPU: 0 cannot)."""
    return {
        node["NodeID"]: int(node["Resources"].get("CPU", 0))
        for node in ray.nodes()
        if node["Alive"] and node["Resources"].get("CPU", 0) >= 1
    }


def cache_groups(
    location: DataLocation, keys: list[str] = ()
) -> tuple[dict[str, int], dict[str, list[str]], dict[str, list[int]]]:
    """Over the live nodes with CPUs: (node id -> CPUs, cache id -> the nodes that see that
    cache, cache id -> indices of ``keys`` whose clips the cache lacks)."""
    nodes = worker_nodes()
    states = ray.get(
        [_cache_state.options(scheduling_strategy=_on(node)).remote(location, list(keys)) for node in nodes]
    )
    groups: dict[str, list[str]] = defaultdict(list)
    missing: dict[str, list[int]] = {}
    for node, (cache, lacking) in zip(nodes, states):
        groups[cache].append(node)
        missing[cache] = lacking
    return nodes, dict(groups), missing


def prepare_on_cluster(found: FoundData, progress: bool = True) -> tuple[int, dict[str, str], str]:
    """Make every node's cache hold every usable clip -> (clips that some cache lacked, display
    -> failure reason, a line saying where and how many decodings that took)."""
    keys = [item.key for item in found.items]
    nodes, groups, missing = cache_groups(found.location, keys)
    if not nodes:
        return 0, {}, "no Ray node has CPUs yet: each node prepares its clips at its first trial"

    tasks = []
    for cache, members in groups.items():
        slots = cycle(interleaved({node: nodes[node] for node in members}))  # spread by CPUs
        lacking = missing[cache]
        for start in range(0, len(lacking), CLIPS_PER_TASK):
            chunk = [found.items[i] for i in lacking[start : start + CLIPS_PER_TASK]]
            tasks.append(
                _prepare_clips.options(scheduling_strategy=_on(next(slots))).remote(found.location, chunk)
            )

    per_node: dict[str, int] = dict.fromkeys(nodes, 0)
    failed: dict[str, str] = {}
    for node, count, failures in as_completed(tasks, "preparing clips on the cluster", progress):
        per_node[node] += count
        failed.update(failures)
    decoded = len({i for lacking in missing.values() for i in lacking}) - len(failed)
    caches = "one cache shared by" if len(groups) == 1 else f"{len(groups)} separate caches on"
    where = (
        f"cluster preparation: {sum(per_node.values())} clips decoded by {len(tasks)} Ray tasks; {caches} "
        f"{len(nodes)} nodes; per node: {', '.join(f'{node[:8]} {count}' for node, count in per_node.items())}"
    )
    return decoded, failed, where


def _model_overrides(name: str, settings: TrialSettings) -> dict:
    return tiny_overrides(name) if settings.smoke_test else {}


@ray.remote(num_cpus=1)
def _feature_tables(settings: TrialSettings, model: str) -> list[tuple[str, str, list[int]]]:
    """(branch, table name, indices of the search clips the table lacks on this node) of each
    branch of ``model`` whose frozen prefix trials will read from the cache."""
    built, _ = build_model(model, _model_overrides(model, settings), settings, torch.device("cpu"))
    plan = cache_plan(built, enabled=settings.feature_cache)
    clips = settings.data.clips("train", "val")
    tables = []
    for branch, how in plan.items():
        if how == "cached":
            table = feature_table(settings, branch, built.branches[branch])
            tables.append(
                (
                    branch,
                    table.root.name,
                    [i for i, clip in enumerate(clips) if not table.entry(clip).is_file()],
                )
            )
    return tables


@ray.remote
def _compute_features(
    settings: TrialSettings, model: str, branch: str, indices: list[int]
) -> tuple[str, int]:
    """Compute one share of a feature table on this node's device -> (node id, entries computed)."""
    torch.set_num_threads(settings.threads)
    device = default_device()
    built, _ = build_model(model, _model_overrides(model, settings), settings, device)
    clips = settings.data.clips("train", "val")
    table = feature_table(settings, branch, built.branches[branch])
    share = [clips[i] for i in indices]
    computed = table.compute(
        built.branches[branch], share, batch_size=FEATURE_BATCH[device.type], progress=False, lock=False
    )
    return ray.get_runtime_context().get_node_id(), computed


def trial_slots(node: dict, cpus: float, gpus: float) -> int:
    """How many tasks with a trial's resources fit on a node at once."""
    resources = node["Resources"]
    fits = math.floor(resources.get("CPU", 0) / cpus + 1e-9)
    if gpus > 0:
        fits = min(fits, math.floor(resources.get("GPU", 0) / gpus + 1e-9))
    return fits


def precompute_features(
    settings: TrialSettings, models: tuple[str, ...], resources: ResourceOptions, progress: bool = True
) -> str:
    """Compute, in every cache of the cluster, the frozen-prefix tables of every model a search
    space can choose, each table split over the nodes sharing the cache in tasks with a trial's
    resources -> a line saying what was computed where."""
    if not settings.feature_cache:
        return "frozen-prefix features: cache off (--no-feature-cache)"
    _, groups, _ = cache_groups(settings.data.location)
    if not groups:
        return "frozen-prefix features: no Ray node with CPUs yet; each node's first trials compute them"
    cpus, gpus = resources.cpus_per_trial, resources.gpus_per_trial
    live = {node["NodeID"]: node for node in ray.nodes() if node["Alive"]}
    shared = ray.put(settings)  # once: the settings carry the backbones' weights (hundreds of MB)
    tasks, tables = [], set()
    for members in groups.values():
        plans = ray.get(
            [_feature_tables.options(scheduling_strategy=_on(members[0])).remote(shared, m) for m in models]
        )
        # table -> (a model that has it, branch, clips it lacks)
        lacking: dict[str, tuple[str, str, list[int]]] = {}
        for model, plan in zip(models, plans):
            for branch, table, missing in plan:
                lacking.setdefault(table, (model, branch, missing))
        tables.update(lacking)
        slots = interleaved({node: trial_slots(live[node], cpus, gpus) for node in members})
        turn = 0  # shares of all tables take turns over the slots
        for model, branch, missing in lacking.values():
            if not missing or not slots:
                continue
            shares = max(1, min(len(slots), len(missing) // MIN_FEATURE_SHARE))
            for k in range(shares):
                node = slots[turn % len(slots)]
                turn += 1
                task = _compute_features.options(num_cpus=cpus, num_gpus=gpus, scheduling_strategy=_on(node))
                tasks.append(task.remote(shared, model, branch, missing[k::shares]))

    per_node: dict[str, int] = defaultdict(int)
    for node, computed in as_completed(tasks, "frozen-prefix features on the cluster", progress):
        per_node[node] += computed
    where = ", ".join(f"{node[:8]} {count}" for node, count in per_node.items()) or "nothing missing"
    return (
        f"frozen-prefix features: {len(tables)} tables of {', '.join(models)} in {len(groups)} "
        f"{'cache' if len(groups) == 1 else 'caches'}; {sum(per_node.values())} entries computed by {len(tasks)} Ray tasks; per node: {where}"
    )
