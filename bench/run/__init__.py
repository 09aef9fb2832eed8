"""A run: the suite, one assembly step, planning, task bodies, executors and the store."""
