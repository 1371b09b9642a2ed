"""Video sources: the Source interface and its implementations (files via PyAV)."""
