"""Prometheus collectors over a node: read from its state, progress and index
scheduler at scrape time, so no counter has to be kept in step with them by hand.

The scrape runs on the event loop like the applier, so a scrape sees the state
between two applied groups, never in the middle of one.
"""
from typing import Callable, Iterator

from faust.exceptions import ConsumerNotStarted
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from storage import shards

LogEnds = Callable[[], dict]  # () -> {partition: log end offset}, only the partitions known


def applied_offsets(node) -> dict:
    """partition -> the last offset this node has applied (-1: none)."""
    return node.applied()


def consumer_log_ends(app, topic: str) -> LogEnds:
    """The log end offsets (high water: the offset the next record will get) of
    ``topic`` that the broker last reported to the faust app's consumer.

    aiokafka learns them from fetch responses only, so a partition is left out
    until its first fetch has answered rather than being reported as empty. They
    are plain attributes of the consumer thread's state: reading them from the
    event loop's thread is safe, at worst one fetch old."""
    def log_ends() -> dict:
        consumer = app.consumer
        ends = {}
        try:
            for tp in consumer.assignment():
                if tp.topic != topic:
                    continue
                end = consumer.highwater(tp)
                if end is not None:
                    ends[tp.partition] = end
        # Not started yet, or the partition was revoked between the two calls (a
        # rebalance): report what is known and let the next scrape see the rest.
        except (ConsumerNotStarted, AssertionError, KeyError):
            pass
        return ends
    return log_ends


class ApplierCollector(Collector):
    """How far this node has applied the log, how far behind it is, and what it skipped."""

    def __init__(self, node, log_ends: LogEnds | None = None):
        self.node = node
        self.log_ends = log_ends or dict

    def collect(self) -> Iterator[Metric]:
        topic = self.node.settings.topic
        applied = dict(applied_offsets(self.node))
        ends = self.log_ends()
        offset = GaugeMetricFamily("pointlog_applied_offset",
                                   "Last log offset this node has applied, per partition (-1: none yet)",
                                   labels=["topic", "partition"])
        for partition, value in sorted(applied.items()):
            offset.add_metric([topic, str(partition)], value)
        yield offset

        end = GaugeMetricFamily("pointlog_log_end_offset",
                                "Offset the next record of the partition will get (its high water), as last "
                                "reported by the broker to this node's consumer",
                                labels=["topic", "partition"])
        lag = GaugeMetricFamily("pointlog_applier_lag_records",
                                "Records in the log not yet applied by this node: pointlog_log_end_offset - "
                                "pointlog_applied_offset - 1; absent until the broker has reported the "
                                "partition's high water",
                                labels=["topic", "partition"])
        for partition, value in sorted(ends.items()):
            end.add_metric([topic, str(partition)], value)
            behind = value - applied.get(partition, -1) - 1
            # A high water below what is applied is older than the records applied
            # (fetched after it was reported): no true lag can be said from it.
            if behind >= 0:
                lag.add_metric([topic, str(partition)], behind)
        yield end
        yield lag

        worker = self.node.shards
        if worker is not None and worker.held:
            applied_shard = GaugeMetricFamily("pointlog_shard_applied_offset",
                                              "Last offset applied of each shard held here (a partition of a "
                                              "sharded collection's topic)", labels=["topic", "shard"])
            shard_lag = GaugeMetricFamily("pointlog_shard_lag_records",
                                          "Records of a shard held here not applied yet, as of the last fetch",
                                          labels=["topic", "shard"])
            for tp in sorted(worker.held):
                labels = [tp.topic, str(tp.partition)]
                applied_shard.add_metric(labels, self.node.state.applied_offset(tp.topic, tp.partition))
                shard_lag.add_metric(labels, worker.lag_of(tp.topic, tp.partition))
            yield applied_shard
            yield shard_lag

        yield CounterMetricFamily("pointlog_dead_letters",
                                  "Log records this node could not decode and copied to the dead-letter topic",
                                  value=self.node.state.dead_letters)
        yield GaugeMetricFamily("pointlog_applier_stopped",
                                "1 once the state could not be written (disk full or failing): nothing more is "
                                "applied until a restart; /readyz says why",
                                value=1 if self.node.failure else 0)


class CollectionCollector(Collector):
    """Per collection and vector name: what is stored, what the Annoy index covers,
    and what the index scheduler has done (when one is registered with the node)."""

    def __init__(self, node):
        self.node = node

    def collect(self) -> Iterator[Metric]:
        points = GaugeMetricFamily("pointlog_points", "Points in the collection", labels=["collection"])
        vectors = GaugeMetricFamily("pointlog_vectors", "Vectors stored under the vector name",
                                    labels=["collection", "vector"])
        indexed = GaugeMetricFamily("pointlog_index_vectors",
                                    "Vectors covered by the loaded Annoy index (0: none loaded); the rest are "
                                    "scanned exactly", labels=["collection", "vector"])
        building = GaugeMetricFamily("pointlog_index_building", "1 while a new Annoy index is being built",
                                     labels=["collection", "vector"])
        for name, col in sorted(self.node.state.collections.items()):
            if shards.is_shard(name):
                name = f"{col.name[1:]}"  # a shard held here: "<incarnation>/<shard>"
            points.add_metric([name], len(col))
            for vector, store in sorted(col.vectors.items()):
                labels = [name, vector]
                vectors.add_metric(labels, len(store))
                indexed.add_metric(labels, len(store.index) if store.index is not None else 0)
                building.add_metric(labels, int(store.building))
        yield from (points, vectors, indexed, building)

        indexes = self.node.indexes
        if indexes is None:
            return
        yield CounterMetricFamily("pointlog_index_builds", "Annoy index builds completed by this process",
                                  value=indexes.builds)
        yield CounterMetricFamily("pointlog_index_passes", "Passes of the index scheduler over every vector store: "
                                  "a store due a rebuild has started one by the end of a pass", value=indexes.passes)
        last = indexes.last_build
        if last:
            duration = GaugeMetricFamily("pointlog_index_last_build_seconds",
                                         "Wall time of the last completed index build, snapshot to swap",
                                         labels=["collection", "vector"])
            duration.add_metric([last["collection"], last["vector"]], last["total_s"])
            yield duration


def register_node(registry, node, log_ends: LogEnds | None = None) -> None:
    registry.register(ApplierCollector(node, log_ends))
    registry.register(CollectionCollector(node))
