"""Device tensors brought to the host without making the host wait for the device."""

from __future__ import annotations

import torch


class HostCopy:
    """Copies of tensors on the host, made on the device's stream (into pinned memory where the tensors are on a
    GPU) and read with `get()`, which waits for these copies only: not for the work queued after them, as
    `.item()` or `.cpu()` would, which lets the host run ahead of the device."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        # copy=True: on the CPU too, what get() gives is the value now, not a live buffer's later one
        self._copies = [t.detach().to("cpu", non_blocking=True, copy=True) for t in tensors]
        self._copied = None
        if any(t.is_cuda for t in tensors):
            self._copied = torch.cuda.Event()
            self._copied.record()

    def get(self) -> list[torch.Tensor]:
        if self._copied is not None:
            self._copied.synchronize()
        return self._copies
