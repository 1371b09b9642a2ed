"""Talking to Triton: async client, model description, shared-memory tensor rings."""
