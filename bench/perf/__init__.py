"""Cost: the dry run's prices and ``bench perf``'s throughput ratios."""
