"""Runs as the app, the CLI and the workers do them: image batches, videos, their disk."""
