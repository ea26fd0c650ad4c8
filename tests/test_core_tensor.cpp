// Tensor's own checks: element access out of bounds (in checked builds) and an allocation that
// fails under the size cap.
//
// Element access through operator() and operator[] is checked when NDEBUG is not defined (Debug
// and the sanitizer builds) or when TAPEGRAD_CHECKED is defined, as it is here, so that this test
// checks it in every build type. Both accessors are always inlined, so this file's checked
// copies never meet the library's unchecked ones.
#define TAPEGRAD_CHECKED 1

#include <doctest/doctest.h>

#include <cstddef>
#include <memory_resource>
#include <new>
#include <string>
#include <tapegrad/tapegrad.hpp>

#include "test_errors.hpp"

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;

namespace {

// A memory resource that refuses every allocation, as an exhausted heap would.
struct RefusingResource final : std::pmr::memory_resource {
    std::size_t asked = 0;
    void* do_allocate(std::size_t bytes, std::size_t) override {
        asked = bytes;
        throw std::bad_alloc();
    }
    void do_deallocate(void*, std::size_t, std::size_t) override {}
    bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override { return this == &o; }
};

}  // namespace

TEST_CASE("element access outside the tensor is an error naming the index and the shape in checked builds") {
    Tensor<double> t(2, 3, {1, 2, 3, 4, 5, 6});
    CHECK(t(1, 2) == 6);
    CHECK(t[5] == 6);
    CHECK(error_of([&] { (void)t(2, 0); }) == "tensor: index (2, 0) outside (2×3)");
    CHECK(error_of([&] { (void)t(0, 3); }) == "tensor: index (0, 3) outside (2×3)");
    CHECK(error_of([&] { t(std::size_t(-1), 0) = 1; }) == fmt::format("tensor: index ({}, 0) outside (2×3)", std::size_t(-1)));
    const Tensor<double>& c = t;
    CHECK(error_of([&] { (void)c(1, 3); }) == "tensor: index (1, 3) outside (2×3)");
    CHECK(error_of([&] { (void)t[6]; }) == "tensor: flat index 6 outside (2×3)");
    CHECK(error_of([&] { (void)c[std::size_t(-1)]; }) ==
          fmt::format("tensor: flat index {} outside (2×3)", std::size_t(-1)));
    CHECK(error_of([] { (void)Tensor<float>()(0, 0); }) == "tensor: index (0, 0) outside (0×0)");
    // Nothing was written by the refused accesses.
    CHECK(tg::max_abs_diff(t, Tensor<double>(2, 3, {1, 2, 3, 4, 5, 6})) == 0);
}

TEST_CASE("an allocation refused under the size cap is an error naming the shape and the bytes") {
    RefusingResource res;
    // 2³⁶ floats = 256 GiB: under the cap of 2⁴⁰ bytes, so the resource is asked and refuses.
    const std::size_t n = std::size_t(1) << 18;
    std::string m = error_of([&] { Tensor<float> t(n, n, &res); });
    CAPTURE(m);
    CHECK(res.asked == n * n * sizeof(float));
    CHECK(m == fmt::format("tensor: cannot allocate {} bytes for shape ({}×{})", n * n * sizeof(float), n, n));
    // Every allocating path: uninit, clone and the shape constructor.
    CHECK(contains(error_of([&] { Tensor<double>::uninit(Shape{3, 5}, &res); }),
                   "cannot allocate 120 bytes for shape (3×5)"));
    CHECK(contains(error_of([&] { Tensor<double>(Shape{4, 1}, &res); }), "cannot allocate 32 bytes for shape (4×1)"));
    CHECK(contains(error_of([&] { Tensor<double>(2, 2).clone(&res); }), "cannot allocate 32 bytes for shape (2×2)"));
    // Over the cap the resource is not even asked.
    res.asked = 0;
    CHECK(error_of([&] { Tensor<double> t(std::size_t(1) << 20, std::size_t(1) << 20, &res); }) ==
          "tensor: shape (1048576×1048576) is too large");
    CHECK(res.asked == 0);
}

TEST_CASE("a node value too large for the arena is refused before the arena is asked") {
    // (2³² − 1)² doubles: the byte count would wrap around 2⁶⁴ if computed unchecked.
    tg::Arena arena;
    CHECK(error_of([&] { Tensor<double>::uninit(Shape{0xffffffffu, 0xffffffffu}, &arena); }) ==
          "tensor: shape (4294967295×4294967295) is too large");
    CHECK(arena.bytes_used() == 0);
}
