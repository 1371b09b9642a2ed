"""Preprocessing: frames → model input tensors, written into shared-memory slots."""
