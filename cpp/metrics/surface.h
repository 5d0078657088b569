// Surface distances as medpy defines them (the numbers papers report): the surface of a binary mask is
// the mask XOR its binary erosion with the connectivity-1 structuring element (outside the image counts
// as background), and distances come from an exact Euclidean distance transform with voxel spacing.
#pragma once

#include <cstdint>
#include <vector>

namespace semiseg::metrics {

struct Grid {
  std::vector<int64_t> shape;
  std::vector<double> spacing;  // one per dimension
  int64_t size() const;
};

// mask XOR erode(mask), mask of 0/1 bytes in row-major order.
std::vector<uint8_t> surface(const uint8_t* mask, const Grid& grid);

// Squared Euclidean distance of every voxel to the nearest voxel where `feature` is 1 (Felzenszwalb and
// Huttenlocher's separable lower-envelope algorithm, exact, anisotropic spacing). No feature: +inf.
std::vector<double> squaredDistanceTo(const std::vector<uint8_t>& feature, const Grid& grid);

// Distances from every surface voxel of `from` to the surface of `to` (medpy __surface_distances).
std::vector<double> surfaceDistances(const uint8_t* from, const uint8_t* to, const Grid& grid);

// numpy.percentile(values, q) with linear interpolation; reorders `values`.
double percentile(std::vector<double>& values, double q);

}  // namespace semiseg::metrics
