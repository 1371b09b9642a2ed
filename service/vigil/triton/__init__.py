"""The Triton server side: embedded launcher, repository materializer, connection."""
