"""Evaluation reports: classification, re-identification and detection metrics as JSON plus a
readable Markdown page with plots."""
