"""ragops."""
