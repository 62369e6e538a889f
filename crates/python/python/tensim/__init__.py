"""Tensor similarity of bilinear networks, from weights alone.

Models are built from arrays (numpy, PyTorch tensors, anything with
``__array__``; PyTorch layout ``[out, in]``) or loaded from files (tensim
safetensors; PyTorch, npz or safetensors with an architecture spec).
Similarities run in Rust (``tensim._tensim``) with the GIL released.
"""

from tensim._tensim import (
    Model,
    bilinear_classifier,
    from_state_dict,
    load,
    matrix,
    model,
    similarity,
    slices,
)

__all__ = [
    "Model",
    "bilinear_classifier",
    "from_state_dict",
    "load",
    "matrix",
    "model",
    "similarity",
    "slices",
]
