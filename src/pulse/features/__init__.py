"""Feast helpers: the store Pulse configures from its settings, materialisation and retrieval."""
