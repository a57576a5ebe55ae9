"""The package's shared conventions: version, configuration report, threads, validation, results."""
import dataclasses
import io
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import kernforge as kf
from kernforge import _validation as V
from kernforge._result import Result


def test_version_and_config():
    assert isinstance(kf.__version__, str) and kf.__version__.count(".") >= 2
    buf = io.StringIO()
    kf.show_config(file=buf)
    text = buf.getvalue()
    for word in ("compiler", "openmp", "threads", "simd", "cuda", "eigen", "areas"):
        assert word in text
    cfg = kf._config.config()
    assert cfg["isa_active"] in ("generic", "avx2", "avx512")
    assert cfg["eigen"].startswith("3.4")
    assert "sor" in cfg["areas"]


def test_threads_set_get_and_context():
    default = kf._core.default_num_threads()
    kf.set_num_threads(1)
    assert kf.get_num_threads() == 1
    with kf.threads(2):
        assert kf.get_num_threads() == 2
        with kf.threads(1):
            assert kf.get_num_threads() == 1
        assert kf.get_num_threads() == 2
    assert kf.get_num_threads() == 1
    kf.set_num_threads(None)
    assert kf.get_num_threads() == default


def test_threads_context_restores_on_error():
    kf.set_num_threads(2)
    with pytest.raises(RuntimeError):
        with kf.threads(1):
            raise RuntimeError("boom")
    assert kf.get_num_threads() == 2


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_set_num_threads_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="non-negative integer"):
        kf.set_num_threads(bad)


def test_isa_override_is_clamped():
    detected = kf._core.detected_isa()
    kf._core.set_isa("generic")
    try:
        assert kf._core.active_isa() == "generic"
    finally:
        kf._core.set_isa("")
    assert kf._core.active_isa() == detected
    with pytest.raises(ValueError, match="isa must be one of"):
        kf._core.set_isa("sse9")


def test_import_is_light_and_lazy():
    # Optional integrations must not be imported by `import kernforge`.
    code = "import sys, kernforge; print(any(m in sys.modules for m in ('torch', 'dask', 'matplotlib', 'sklearn', 'ot')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute"):
        kf.definitely_not_here


# ---------------------------------------------------------------- validation helpers
def test_float_dtype_policy():
    assert V.float_dtype_of("x", np.zeros(2, np.float32)) == np.float32
    assert V.float_dtype_of("x", np.zeros(2, np.int64)) == np.float64
    assert V.float_dtype_of("x", np.zeros(2, bool)) == np.float64
    with pytest.raises(TypeError, match="x must have a real floating dtype"):
        V.float_dtype_of("x", np.zeros(2, np.complex128))
    assert V.result_dtype(a=np.zeros(1, np.float32), b=np.zeros(1, np.float32)) == np.float32
    assert V.result_dtype(a=np.zeros(1, np.float32), b=np.zeros(1)) == np.float64


def test_as_array_checks():
    a = V.as_array(np.asfortranarray(np.ones((3, 4))), "A", ndim=2)
    assert a.flags.c_contiguous
    with pytest.raises(ValueError, match="A must be 2-D, got 1-D"):
        V.as_array(np.ones(3), "A", ndim=2)
    with pytest.raises(ValueError, match=r"b must have shape \(5,\), got \(4,\)"):
        V.as_array(np.ones(4), "b", shape=(5,))
    with pytest.raises(ValueError, match="b must not be empty"):
        V.as_array(np.ones(0), "b")
    with pytest.raises(ValueError, match="b must be finite, found NaN"):
        V.as_array(np.array([1.0, np.nan]), "b")
    with pytest.raises(ValueError, match="found inf"):
        V.as_array(np.array([1.0, np.inf]), "b")
    with pytest.raises(TypeError, match="dense array"):
        V.as_array(sp.eye(3), "b")
    with pytest.raises(TypeError, match="numeric"):
        V.as_array(np.array([object()]), "b")
    strided = np.arange(10.0)[::2]
    assert V.as_array(strided, "x").flags.c_contiguous


def test_as_csr_canonicalises_without_touching_input(rng):
    dense = rng.standard_normal((5, 5))
    rows = np.array([0, 0, 1, 2, 4, 0])
    cols = np.array([3, 1, 1, 2, 4, 3])
    vals = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    coo = sp.coo_matrix((vals, (rows, cols)), shape=(5, 5))
    C = V.as_csr(coo)
    assert C.has_sorted_indices and C.indices.dtype == np.int32
    np.testing.assert_array_equal(C.toarray(), coo.toarray())  # duplicates summed
    unsorted = sp.csr_matrix((np.array([1.0, 2.0]), np.array([2, 0]), np.array([0, 2, 2, 2])), shape=(3, 3))
    before = unsorted.indices.copy()
    V.as_csr(unsorted)
    np.testing.assert_array_equal(unsorted.indices, before)
    np.testing.assert_array_equal(V.as_csr(dense).toarray(), dense)
    t = V.as_csr((C.data, C.indices, C.indptr))
    np.testing.assert_array_equal(t.toarray(), C.toarray())
    with pytest.raises(ValueError, match="A must be square, got shape"):
        V.as_csr(sp.random(3, 4, density=0.5), square=True)
    with pytest.raises(ValueError, match="A must not be empty"):
        V.as_csr(sp.csr_matrix((0, 0)))
    bad = sp.csr_matrix(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="A must be finite"):
        V.as_csr(bad)


def test_scalar_checks():
    assert V.check_open_interval(1.5, "omega", 0, 2) == 1.5
    with pytest.raises(ValueError, match=r"omega must lie in \(0, 2\), got 2.5"):
        V.check_open_interval(2.5, "omega", 0, 2)
    with pytest.raises(TypeError, match="omega must be a real number"):
        V.check_open_interval("1", "omega", 0, 2)
    with pytest.raises(ValueError, match="reg must be positive"):
        V.check_positive(0.0, "reg")
    with pytest.raises(ValueError, match="max_iter must be >= 0"):
        V.check_int(-1, "max_iter", minimum=0)
    with pytest.raises(TypeError, match="max_iter must be an integer"):
        V.check_int(2.0, "max_iter")
    with pytest.raises(ValueError, match="method must be one of"):
        V.check_choice("x", "method", ("a", "b"))
    assert V.check_seed(None) == 0
    assert V.check_seed(np.random.SeedSequence(3)) == V.check_seed(np.random.SeedSequence(3))


def test_result_repr_is_short_and_dict_like():
    @dataclasses.dataclass(frozen=True, repr=False)
    class R(Result):
        x: np.ndarray
        n_iter: int
        converged: bool

    r = R(x=np.zeros(10000), n_iter=3, converged=True)
    text = repr(r)
    assert "shape=(10000,)" in text and "n_iter = 3" in text and len(text) < 200
    assert r["n_iter"] == 3 and "x" in r.keys()
    with pytest.raises(KeyError):
        r["nope"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.n_iter = 4


def test_convergence_warning_is_a_user_warning():
    assert issubclass(kf.ConvergenceWarning, UserWarning)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        warnings.warn("x", kf.ConvergenceWarning)
    assert w[0].category is kf.ConvergenceWarning
