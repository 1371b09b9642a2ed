"""Scale-out: workers share the streams through a Kafka consumer group (docs/scale-out.md).

The desired streams live in a compacted control topic keyed by stream id; every worker joins
one consumer group on it, and the partitions Kafka assigns to a worker decide which streams
it runs. Workers publish their status to a status topic, from which any worker answers for
the whole cluster.
"""
