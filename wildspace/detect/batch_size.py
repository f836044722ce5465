"""Choosing how many images go through the network at once.

On CPU, batching barely changes throughput (the convolutions are compute-bound) while
memory grows with the batch, so a small fixed batch is used. On a GPU the batch is sized
from the free device memory: one forward pass at the largest input the detector can get
(``input_size`` square) measures the memory an image needs, and the batch takes a share of
what is free.
"""

from __future__ import annotations

import logging

import numpy as np

CPU_BATCH_SIZE = 4
MAX_BATCH_SIZE = 64
MEMORY_SHARE = 0.6  # of the free device memory, leaving room for fragmentation and others

log = logging.getLogger(__name__)


def batch_size_for_memory(free_bytes: int, per_image_bytes: int, fixed_bytes: int = 0,
                          share: float = MEMORY_SHARE, limit: int = MAX_BATCH_SIZE) -> int:
    """Largest batch whose activations fit in ``share`` of ``free_bytes`` (at least 1).

    Args:
        free_bytes: free device memory now.
        per_image_bytes: extra peak memory one more image in the batch costs.
        fixed_bytes: peak memory a pass needs regardless of the batch (workspace).
    """
    if per_image_bytes <= 0:
        return limit
    budget = free_bytes * share - fixed_bytes
    return int(max(1, min(limit, budget // per_image_bytes)))


def auto_batch_size(detector, requested: int | None = None) -> int:
    """``requested`` when given; else on CPU the runtime's preferred batch
    (``detector.cpu_batch_size``) or :data:`CPU_BATCH_SIZE` images in flight, split
    over the detector's ``parallel_batches`` network sessions (two sessions: batches of 2, so
    memory stays about where one session with batches of 4 is), or on a GPU a batch sized
    from the free memory (measured with one and two images at ``input_size`` square)."""
    if requested:
        return requested
    device = getattr(detector, "device", "cpu")
    if not str(device).startswith("cuda") or not hasattr(detector, "forward"):
        preferred = getattr(detector, "cpu_batch_size", None)
        if preferred:  # the runtime's own choice (OpenVINO: single images)
            return int(preferred)
        return max(1, CPU_BATCH_SIZE // max(1, int(getattr(detector, "parallel_batches", 1))))
    import torch

    size = detector.info.input_size
    peaks = []
    for n in (1, 2):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        detector.forward(np.zeros((n, size, size, 3), dtype=np.uint8))
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    per_image = max(peaks[1] - peaks[0], 1)
    free, _ = torch.cuda.mem_get_info(device)
    chosen = batch_size_for_memory(free, per_image, fixed_bytes=max(peaks[0] - per_image, 0))
    log.info("auto batch size %d (%.0f MiB per image at %d px, %.0f MiB free)", chosen,
             per_image / 2**20, size, free / 2**20)
    return chosen
