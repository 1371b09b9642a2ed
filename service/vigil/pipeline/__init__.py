"""The pipeline: per-stream queues and lifecycle, the cross-stream batcher, the runner."""
