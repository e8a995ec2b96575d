"""Which device trains: CUDA when present (or asked for), else the CPU."""

from __future__ import annotations

import torch


def resolve_device(requested: str = "auto") -> torch.device:
    """`auto`: cuda if available, else cpu; `cuda`/`cuda:N` fail clearly on a machine without CUDA."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} was requested but this machine has no CUDA device")
    return device


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
