"""Smart recording: a pre-event cache of each stream's encoded video, clips written from it
without re-encoding, their store and retention (see docs/recording.md)."""
