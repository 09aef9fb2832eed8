"""cloakbench harness: registry, canvas, faces, data, weights, runner, store, metrics, leaderboard, CLI."""

__version__ = "0.1.0"
