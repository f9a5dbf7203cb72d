"""Benchmarks: each compares two paths in the same process and reports the median ratio."""
