// Non-owning views of caller memory: a strided matrix, a strided vector and a CSR matrix.
// Strides are in elements (not bytes), so a NumPy array of any order or slicing maps without a copy.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kf {

using index_t = std::ptrdiff_t;

template <class T>
struct VectorView {
  T* data = nullptr;
  index_t size = 0;
  index_t stride = 1;

  T& operator[](index_t i) const { return data[i * stride]; }
  bool contiguous() const { return stride == 1 || size <= 1; }
};

template <class T>
struct MatrixView {
  T* data = nullptr;
  index_t rows = 0;
  index_t cols = 0;
  index_t row_stride = 0;  // elements between A(i, j) and A(i + 1, j)
  index_t col_stride = 1;  // elements between A(i, j) and A(i, j + 1)

  T& operator()(index_t i, index_t j) const { return data[i * row_stride + j * col_stride]; }
  bool row_major() const { return col_stride == 1 && (row_stride == cols || rows <= 1); }
  bool col_major() const { return row_stride == 1 && (col_stride == rows || cols <= 1); }
  MatrixView transposed() const { return {data, cols, rows, col_stride, row_stride}; }
  VectorView<T> row(index_t i) const { return {data + i * row_stride, cols, col_stride}; }
  VectorView<T> col(index_t j) const { return {data + j * col_stride, rows, row_stride}; }
};

// Compressed sparse rows. Column indices may be of type I = int32_t or int64_t.
template <class T, class I>
struct CsrView {
  index_t rows = 0;
  index_t cols = 0;
  const I* indptr = nullptr;   // rows + 1 entries
  const I* indices = nullptr;  // nnz entries
  const T* data = nullptr;     // nnz entries

  index_t nnz() const { return rows ? static_cast<index_t>(indptr[rows]) : 0; }
};

}  // namespace kf
