"""The compiled fast path: numba kernels over NumPy arrays, and the runner that feeds them."""
