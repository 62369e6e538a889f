"""Tensor similarity of bilinear networks, from weights alone.

Models are built from arrays (numpy, PyTorch tensors, anything with
``__array__``; PyTorch layout ``[out, in]``) or loaded from files (tensim
safetensors; PyTorch, npz or safetensors with an architecture spec).
Similarities run in Rust (``tensim._tensim``) with the GIL released.

``matrix_pairs`` and ``assemble`` compute a matrix in blocks of pairs, for
executors that spread one matrix over processes or machines;
``tensim.ray.matrix`` is one, on Ray (``pip install tensim[ray]``). Importing
``tensim`` does not import Ray.
"""

from tensim._tensim import (
    Model,
    assemble,
    bilinear_classifier,
    from_state_dict,
    load,
    matrix,
    matrix_pairs,
    model,
    similarity,
    slices,
)

__all__ = [
    "Model",
    "assemble",
    "bilinear_classifier",
    "from_state_dict",
    "load",
    "matrix",
    "matrix_pairs",
    "model",
    "similarity",
    "slices",
]
