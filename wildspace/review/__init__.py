"""Human review of detections: corrections stored per owner, applied to results, exported.

- :mod:`wildspace.review.store`: the corrections (SQLite per owner, one transaction per save);
- :mod:`wildspace.review.state`: a result's boxes with the corrections applied;
- :mod:`wildspace.review.sources`: what can be reviewed (batch runs, queued jobs, uploads);
- :mod:`wildspace.review.view`: paging, filters and the annotated image;
- :mod:`wildspace.review.exports`: MD JSON, Camtrap DP and training sets with the corrections;
- :mod:`wildspace.review.progress`: reviewed/total, counts, precision/recall by threshold.
"""
