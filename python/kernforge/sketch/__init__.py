"""Randomized sketching: operators, sketch-based least squares, row sampling, randomized SVD.

Operators (``S @ A``, ``A @ S.T``, ``S.T @ Y``, ``to_dense()``, ``to_sparse()``):
:class:`CountSketch`, :class:`SparseSign`, :class:`VerySparseRandomProjection`, :class:`Gaussian`,
:class:`SRHT`, :class:`SRFT`. Drivers: :func:`lstsq` (normal equations with refinement, randomized Cholesky-QR, sketch-and-precondition LSQR/LSMR,
sketch-and-solve), :func:`leverage_scores`, :func:`lewis_weights`, :func:`sample_rows`,
:func:`randomized_svd`. Iterative: :func:`sketch_and_project` (randomized block Kaczmarz,
block coordinate descent and the Gower-Richtarik family).
"""
from ._operators import (SKETCHES, SRFT, SRHT, CountSketch, Gaussian, SketchOperator, SparseSign,
                         VerySparseRandomProjection)
from ._lstsq import LstsqResult, lstsq
from ._sampling import SampleResult, leverage_scores, lewis_weights, sample_rows
from ._svd import SVDResult, randomized_svd
from ._iterative import SketchProjectResult, sketch_and_project

__all__ = [
    "SketchOperator",
    "CountSketch",
    "SparseSign",
    "VerySparseRandomProjection",
    "Gaussian",
    "SRHT",
    "SRFT",
    "SKETCHES",
    "LstsqResult",
    "lstsq",
    "SampleResult",
    "leverage_scores",
    "lewis_weights",
    "sample_rows",
    "SVDResult",
    "randomized_svd",
    "SketchProjectResult",
    "sketch_and_project",
]
