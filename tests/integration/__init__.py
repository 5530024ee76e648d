"""Tests against real backend servers on loopback: S3 (moto), Redis."""
