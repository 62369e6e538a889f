"""Seed corpus of the `.mat` fuzz target: small SVHN-layout files written by
scipy's own MATLAB v5 writer (X: 32x32x3xN uint8, y: Nx1), compressed and
not, with the labels stored as uint8 and as double, as SVHN's files are.

    python make_mat_seeds.py   # needs numpy and scipy; writes beside itself
"""
import os

import numpy as np
import scipy.io

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mat")
rng = np.random.default_rng(0)
n = 3
x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
y = np.array([[1], [10], [7]], dtype=np.uint8)
for name, compress, labels in [
    ("plain_uint8", False, y),
    ("compressed_uint8", True, y),
    ("plain_double", False, y.astype(np.float64)),
    ("compressed_double", True, y.astype(np.float64)),
]:
    scipy.io.savemat(os.path.join(here, f"{name}.mat"), {"X": x, "y": labels},
                     do_compression=compress)
