// Common Eigen types used across the lindiff core.
#pragma once
#include <Eigen/Dense>
#include <cstdint>

namespace lindiff {

using Index = std::int64_t;
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Matrix = Eigen::MatrixXd;  // column-major; used for symmetric matrices and eigenbases
using Vector = Eigen::VectorXd;
// A read-only view of any 2-D float64 array: C order, F order or strided, without a copy.
using StridedRef =
    Eigen::Ref<const RowMatrix, 0, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;
using ConstRowRef = Eigen::Ref<const RowMatrix>;

}  // namespace lindiff
