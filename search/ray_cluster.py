"""Reaching the Ray cluster the user meant, before anything is written to MLflow.

- Without ``--ray-address`` a search starts its own local runtime (``address="local"``): a
  plain ``ray.init()`` would join any cluster already running on the machine (``ray start
  --head`` writes its address to /tmp/ray), so a "local" search on a shared workstation would
  silently run on someone else's cluster.
- With ``--ray-address HOST:PORT`` the address is first tried with a plain TCP connect bounded
  by ``JOINTSEARCH_CONNECT_TIMEOUT_S`` (default 10 s): ``ray.init`` itself retries a closed port
  for minutes and ignores Ctrl-C meanwhile.
- The trial's resources must exist on one node: asking for a GPU where Ray sees none is an
  error now, not a search that waits forever.

The cluster used is returned as a :class:`ClusterInfo`, printed and tagged on the parent run.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError
from .settings import SearchSettings
from .validation import check_reachable


@dataclass(frozen=True)
class ClusterInfo:
    address: str
    local: bool  # a runtime this search started (and stops when it ends)
    nodes: int
    cpus: float
    gpus: float

    def tags(self) -> dict[str, str]:
        return {"jointsearch.cluster.address": self.address, "jointsearch.cluster.local": str(self.local).lower(),
                "jointsearch.cluster.nodes": str(self.nodes), "jointsearch.cluster.cpus": f"{self.cpus:g}",
                "jointsearch.cluster.gpus": f"{self.gpus:g}"}

    def line(self) -> str:
        kind = "a local Ray runtime of this process (no running cluster joined)" if self.local else "the Ray cluster"
        return (f"cluster: {kind} at {self.address}: {self.nodes} node{'s' if self.nodes != 1 else ''}, "
                f"{self.cpus:g} CPUs, {self.gpus:g} GPUs")


def connect(settings: SearchSettings) -> ClusterInfo:
    """Start or join Ray for ``settings`` and check that a trial's resources exist on one node."""
    import ray

    from .ray_tune import init_ray

    address = settings.ray_address
    if address and address != "auto":
        check_reachable(address, "the Ray cluster", "--ray-address")
    init_ray(address)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = sum(n.get("Resources", {}).get("CPU", 0.0) for n in nodes)
    gpus = sum(n.get("Resources", {}).get("GPU", 0.0) for n in nodes)
    try:
        gcs = ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001 - only for display
        gcs = address or "local"
    info = ClusterInfo(address=address or gcs, local=not address, nodes=len(nodes), cpus=cpus, gpus=gpus)
    need_cpu, need_gpu = settings.cpus_per_trial, settings.least_gpus_per_trial
    fits = [n for n in nodes if n.get("Resources", {}).get("CPU", 0.0) >= need_cpu
            and n.get("Resources", {}).get("GPU", 0.0) >= need_gpu]
    if not fits:
        if need_gpu > 0 and gpus == 0:
            raise UsageError(f"--gpus-per-trial {need_gpu:g} asks for a GPU, but Ray sees none on "
                             f"{info.address}; use --gpus-per-trial 0 or a cluster with GPUs")
        raise UsageError(f"no node of {info.address} has {need_cpu:g} CPUs and {need_gpu:g} GPUs for one trial "
                         f"(the cluster has {cpus:g} CPUs, {gpus:g} GPUs on {len(nodes)} nodes); "
                         f"lower --cpus-per-trial / --gpus-per-trial")
    return info
