"""Brute-force float64 references for the MMD tests."""
