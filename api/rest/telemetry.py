"""``GET /telemetry``, ``GET /cluster`` and ``GET /collections/{c}/cluster`` in Qdrant's
shapes, with what pointlog can honestly report about itself.

Telemetry: the node's id, its name, version and start time, each collection's vector
count, optimizer status and params, and REST request counts and mean durations per
route and status (from the same histogram as ``/metrics``; Qdrant's min and max
durations are not kept, so they are left out). A node without ``--cluster`` answers
``/cluster`` ``disabled``; an unsharded collection's cluster info lists one active
local shard (every node holds it whole; Kafka replicates the log), a sharded one's
lists where the cluster's group assignment put its shards (api/shards.py).
"""
from datetime import datetime, timezone

from starlette.requests import Request
from starlette.routing import Route

from api import service
from api import shards as sharded
from storage import shards
from api.rest.routes import VERSION, handler
from streams.node import Node

STARTED = datetime.now(timezone.utc)


def _responses(registry) -> dict:
    counts, sums = {}, {}
    for metric in registry.collect():
        if metric.name != "pointlog_http_request_duration_seconds":
            continue
        for sample in metric.samples:
            key = (f"{sample.labels['method']} {sample.labels['route']}", sample.labels["status"])
            if sample.name.endswith("_count"):
                counts[key] = int(sample.value)
            elif sample.name.endswith("_sum"):
                sums[key] = sample.value
    out: dict = {}
    for (route, status), count in sorted(counts.items()):
        if count == 0:
            continue
        total = sums.get((route, status), 0.0) * 1e6
        out.setdefault(route, {})[status] = {"count": count, "avg_duration_micros": total / count,
                                             "total_duration_micros": int(total)}
    return out


@handler
async def telemetry(request: Request, node: Node):
    collections = []
    for name in sorted(n for n in node.state.collections if not shards.is_shard(n)):
        info = service.collection_info(node.state.collections[name])
        collections.append({"vectors": sum(len(s) for _n, s in node.state.collections[name].named_stores()),
                            "optimizers_status": info["optimizer_status"], "params": info["config"]["params"]})
    return {"id": str(service.node_id(node)),
            "app": {"name": "pointlog", "version": VERSION, "startup": STARTED.isoformat()},
            "collections": {"number_of_collections": len(collections), "collections": collections},
            "cluster": {"enabled": False},
            "requests": {"rest": {"responses": _responses(request.app.state.metrics)}, "grpc": {"responses": {}}}}


@handler
async def cluster(request: Request, node: Node):
    """Qdrant's ClusterStatus. A node of a ``--cluster`` is "enabled": its peers are the
    members of the shard group's last assignment (api/shards.py), the term counts the
    assignments it has seen (Kafka's group protocol, not Raft, decides), and
    ``pointlog_shards`` lists the shards held here with their lag."""
    if not node.settings.cluster or node.shards is None:
        return {"status": "disabled"}
    worker = node.shards
    held = [{"topic": tp.topic, "shard_id": tp.partition, "lag": worker.lag_of(tp.topic, tp.partition)}
            for tp in sorted(worker.held)]
    return {"status": "enabled", "peer_id": sharded.peer_of(worker.name),
            "peers": {str(sharded.peer_of(name)): {"uri": url} for name, url in sorted(worker.nodes.items())},
            "raft_info": {"term": worker.generation, "commit": worker.generation, "pending_operations": 0,
                          "leader": None, "role": "Follower" if not worker.rebalancing else "Candidate",
                          "is_voter": True},
            "consensus_thread_status": {"consensus_thread_status": "working",
                                        "last_update": datetime.now(timezone.utc).isoformat()},
            "message_send_failures": {}, "pointlog_shards": held}


@handler
async def collection_cluster(request: Request, node: Node):
    return service.collection_cluster(node, request.path_params["collection"])


ROUTES = [
    Route("/telemetry", telemetry, methods=["GET"]),
    Route("/cluster", cluster, methods=["GET"]),
    Route("/collections/{collection}/cluster", collection_cluster, methods=["GET"]),
]
