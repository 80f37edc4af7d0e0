"""Reading, validating, splitting and placing BEIR-layout datasets."""
