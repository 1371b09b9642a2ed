"""The pipeline: per-stream queues and state, the cross-stream batcher, the Pipeline engine."""
