// Helpers shared by the binding files: NumPy buffers to kf views (strides in elements, no copy),
// and the one place where a float32/float64 choice becomes a template instantiation.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "kernforge/common/errors.hpp"
#include "kernforge/common/views.hpp"

namespace kf {
namespace py = pybind11;

template <class T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

template <class T>
void check_dtype(const py::array& a, const char* name) {
  if (!py::isinstance<py::array_t<T>>(a))
    throw_invalid(name, " must have dtype ", py::str(py::dtype::of<T>()).cast<std::string>(), ", got ",
                  py::str(a.dtype()).cast<std::string>());
}

// A 2-D array of dtype T as a strided view (any order, any slicing). Writable on request.
template <class T>
MatrixView<T> matrix_view(const py::array& a, const char* name, bool writable = false) {
  check_dtype<T>(a, name);
  KF_REQUIRE(a.ndim() == 2, name, " must be 2-D, got ", a.ndim(), "-D");
  if (writable && !a.writeable()) throw_invalid(name, " must be writable");
  const auto* p = static_cast<const T*>(a.data());
  return {const_cast<T*>(p), static_cast<index_t>(a.shape(0)), static_cast<index_t>(a.shape(1)),
          static_cast<index_t>(a.strides(0) / static_cast<py::ssize_t>(sizeof(T))),
          static_cast<index_t>(a.strides(1) / static_cast<py::ssize_t>(sizeof(T)))};
}

template <class T>
VectorView<T> vector_view(const py::array& a, const char* name, bool writable = false) {
  check_dtype<T>(a, name);
  KF_REQUIRE(a.ndim() == 1, name, " must be 1-D, got ", a.ndim(), "-D");
  if (writable && !a.writeable()) throw_invalid(name, " must be writable");
  const auto* p = static_cast<const T*>(a.data());
  return {const_cast<T*>(p), static_cast<index_t>(a.shape(0)),
          static_cast<index_t>(a.strides(0) / static_cast<py::ssize_t>(sizeof(T)))};
}

// Pointer to a C-contiguous array of dtype T with the given number of elements (the Python layer
// guarantees contiguity where a kernel needs it; this re-checks so a mistake is an error, not a
// wrong answer).
template <class T>
T* contiguous_ptr(const py::array& a, const char* name, py::ssize_t size, bool writable = false) {
  check_dtype<T>(a, name);
  if (!(a.flags() & py::array::c_style)) throw_invalid(name, " must be C-contiguous");
  KF_REQUIRE(a.size() == size, name, " must have ", size, " elements, got ", a.size());
  if (writable && !a.writeable()) throw_invalid(name, " must be writable");
  return static_cast<T*>(const_cast<void*>(a.data()));
}

}  // namespace kf
