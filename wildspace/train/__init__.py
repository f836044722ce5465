"""Training: fine-tune classifiers, train re-ID embedders, export models the app loads."""
