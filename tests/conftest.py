import numpy as np
import pytest

import kernforge as kf


@pytest.fixture(autouse=True)
def _restore_threads():
    # A test that changes the thread count must not leak it into the next test.
    before = kf.get_num_threads()
    yield
    kf.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def poisson2d(n, dtype=np.float64):
    """The 2-D 5-point Laplacian on an n x n grid (Dirichlet), CSR."""
    import scipy.sparse as sp

    T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n))
    I = sp.eye(n)
    return (sp.kron(T, I) + sp.kron(I, T)).tocsr().astype(dtype)
