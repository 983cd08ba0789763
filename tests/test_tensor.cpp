#include <catch2/catch.hpp>

#include "tensor/random.h"
#include "tensor/tensor.h"

using namespace st;

TEST_CASE("tensor views share storage and check their bounds", "[tensor]") {
  Tensor t = Tensor::from_vector(std::vector<float>{0, 1, 2, 3, 4, 5}, {3, 2});
  Tensor rows = t.slice0(1, 3);
  REQUIRE(rows.shape() == Shape{2, 2});
  REQUIRE(rows.data<float>()[0] == 2.0f);
  rows.data<float>()[0] = 42.0f;
  REQUIRE(t.data<float>()[2] == 42.0f);
  REQUIRE(t.reshape({6}).numel() == 6);
  REQUIRE_THROWS_AS(t.reshape({4}), std::invalid_argument);
  REQUIRE_THROWS_AS(t.slice0(2, 4), std::out_of_range);
  REQUIRE_THROWS_AS(t.view(5, {2}), std::out_of_range);
  REQUIRE_THROWS_AS(t.data<double>(), std::logic_error);
}

TEST_CASE("tensor dtype conversion and deep copies", "[tensor]") {
  Tensor t = Tensor::from_vector(std::vector<float>{1.5f, -2.0f}, {2});
  Tensor d = t.to(DType::F64);
  REQUIRE(d.data<double>()[0] == 1.5);
  Tensor c = t.clone();
  c.data<float>()[0] = 7.0f;
  REQUIRE(t.data<float>()[0] == 1.5f);
  REQUIRE(t.to_vector_f64() == std::vector<double>{1.5, -2.0});
}

TEST_CASE("counter-based uniforms are in 0 to 1 and roughly uniform", "[tensor]") {
  double sum = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    float u = uniform01(7, i);
    REQUIRE(u >= 0.0f);
    REQUIRE(u < 1.0f);
    sum += u;
  }
  REQUIRE(sum / n == Approx(0.5).margin(0.01));
  REQUIRE(uniform01(1, 5) != uniform01(2, 5));
}
