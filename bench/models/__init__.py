"""Recognisers' weights and runtimes: provisioning, checksums, converters, detectors, calibration."""
