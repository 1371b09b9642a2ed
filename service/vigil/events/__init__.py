"""Events: DeepStream nvmsgconv schema models, building them from detections, and sinks."""
