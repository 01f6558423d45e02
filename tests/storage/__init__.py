"""Tests of etl/storage/, one file per module."""
