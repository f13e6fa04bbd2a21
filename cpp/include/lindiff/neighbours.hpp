// Exact k-nearest-neighbour search (Euclidean) of queries in a reference set, for memorisation
// diagnostics of generated samples against a training set.
//
// Method: blocked distance matrix by the expansion ‖q‖² + ‖r‖² − 2 q·r, one matrix product per
// (query chunk × reference chunk) through blas::gemm (NumPy's OpenBLAS when loaded, issued from the
// calling thread so that its pool is never entered from two of our threads), then the best
// k + kExtraCandidates candidates per query are kept by a fused scan of each product block, in
// parallel over fixed query sub-blocks. The full n×M matrix is never formed.
//
// The expansion cancels catastrophically for near-duplicates (the memorised samples), so the
// selected candidates' squared distances are recomputed exactly from the differences Σ (q − r)²,
// and the candidates are re-sorted by (exact distance, index). A rounding bound then certifies the
// result: any reference point outside the candidates has an expanded value at least that of the last
// candidate, hence an exact squared distance ≥ that value − ε(‖q‖² + max‖r‖²), ε = (4d + 16)·2⁻⁵³.
// If this lower bound does not exceed the k-th exact distance (many points tied within rounding),
// the query falls back to an exact scan over all reference points. The output is therefore the exact
// k nearest neighbours, ordered by (distance, index), ties broken by the smaller index.
//
// Determinism: chunk sizes are constants (independent of `workers`), so results are bit-identical
// for any number of workers.
#pragma once
#include <cstdint>
#include <functional>

#include "lindiff/types.hpp"

namespace lindiff {

using IndexRowMatrix = Eigen::Matrix<std::int64_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr Index kNeighbourQueryChunk = 2048;  // queries per product block
constexpr Index kNeighbourRefChunk = 8192;    // reference points per product block
constexpr Index kNeighbourTask = 64;          // queries per parallel selection task
constexpr Index kExtraCandidates = 4;         // candidates kept beyond k

struct NeighbourStats {
  Index fallbacks = 0;  // queries that needed the exact full scan
};

// dist (n×k) receives Euclidean distances, index (n×k) the reference rows, both sorted by
// (distance, index). Q is n×d, R is M×d, 1 <= k <= M. `check` runs on the calling thread between
// product blocks (may throw).
NeighbourStats nearest_neighbours(const ConstRowRef& Q, const ConstRowRef& R, Index k, int workers,
                                  const std::function<void()>& check, Eigen::Ref<RowMatrix> dist,
                                  Eigen::Ref<IndexRowMatrix> index);

}  // namespace lindiff
