"""Services the front ends share: detectors, classifiers and galleries, each caching its models."""
