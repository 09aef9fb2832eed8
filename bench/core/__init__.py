"""What every room stands on: paths, input validation, checksums, devices, progress, the work log."""
