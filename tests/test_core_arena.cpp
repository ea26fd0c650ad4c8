// Memory: the tape's arena makes a reset/forward/backward loop allocation-free after warm-up.
#include <doctest/doctest.h>

#include <tapegrad/tapegrad.hpp>

#include "count_new.hpp"

using tapegrad::test::g_news;

namespace tg = tapegrad;

TEST_CASE("a training-style loop allocates nothing on the heap after its first steps") {
    tg::Tensor<float> x(64, 32), w1(32, 16), b1(1, 16), w2(16, 4);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7) * 0.1f - 0.3f;
    for (std::size_t i = 0; i < w1.size(); ++i) w1[i] = float(i % 5) * 0.05f - 0.1f;
    for (std::size_t i = 0; i < w2.size(); ++i) w2[i] = float(i % 3) * 0.05f - 0.05f;
    tg::GradBuffer<float> gw1, gb1, gw2;
    tg::Tape<float> tape(1024);  // deliberately small: the arena must grow, then settle

    long during_steady = -1;
    for (int step = 0; step < 12; ++step) {
        if (step == 4) during_steady = g_news.load();
        tape.reset();
        auto X = tape.constant_ref(x);
        auto W1 = tape.external(w1, &gw1);
        auto B1 = tape.external(b1, &gb1);
        auto W2 = tape.external(w2, &gw2);
        auto h = tg::matmul(X, W1) + B1;
        auto out = tg::matmul(h * h, W2);
        auto loss = tg::apply(tg::SumTo{{1, 1}}, out * out) * (1.0 / 64);
        tape.backward(loss);
    }
    CHECK(g_news.load() - during_steady == 0);
    CHECK(tape.arena().blocks() == 1);
    CHECK(gw1.shape() == tg::Shape{32, 16});
    CHECK(gb1.shape() == tg::Shape{1, 16});
}

TEST_CASE("reset keeps the arena's memory and rewinds it") {
    tg::Arena arena(256);
    void* a = arena.allocate(100, 8);
    (void)arena.allocate(1000, 64);  // forces a second block
    CHECK(arena.blocks() == 2);
    arena.reset();
    CHECK(arena.blocks() == 1);  // coalesced into one block large enough for the whole round
    CHECK(arena.bytes_reserved() >= 1100);
    void* b = arena.allocate(100, 8);
    (void)arena.allocate(1000, 64);
    CHECK(arena.blocks() == 1);
    arena.reset();
    void* c = arena.allocate(100, 8);
    CHECK(b == c);  // the same memory, reused
    (void)a;
}

TEST_CASE("allocations from the arena honour the requested alignment") {
    tg::Arena arena(1 << 12);
    for (std::size_t al : {1u, 8u, 16u, 64u}) {
        (void)arena.allocate(3, 1);
        void* p = arena.allocate(24, al);
        CHECK(reinterpret_cast<std::uintptr_t>(p) % al == 0);
    }
}

#ifdef TAPEGRAD_ASAN
// Under AddressSanitizer the arena poisons what it has not handed out (docs/guarantees.md), so an
// op writing past its output or a value read after reset() is reported like a heap error.
TEST_CASE("under ASan the arena poisons redzones, unused memory and everything after reset") {
    tg::Arena arena(1 << 12);
    auto* p = static_cast<unsigned char*>(arena.allocate(40, 16));
    CHECK(__asan_region_is_poisoned(p, 40) == nullptr);        // what was handed out is usable
    CHECK(__asan_address_is_poisoned(p + 40) != 0);             // the redzone after it is not
    CHECK(__asan_address_is_poisoned(p + 40 + 16) != 0);
    auto* q = static_cast<unsigned char*>(arena.allocate(8, 8));
    CHECK(q >= p + 40 + tg::Arena::kRedzone);                  // the next allocation skips it
    arena.reset();
    CHECK(__asan_address_is_poisoned(p) != 0);                  // a stale view reads poison
    CHECK(__asan_address_is_poisoned(q) != 0);
    auto* r = static_cast<unsigned char*>(arena.allocate(40, 16));
    CHECK(r == p);                                             // the memory is reused…
    CHECK(__asan_region_is_poisoned(r, 40) == nullptr);        // …and usable again
}

TEST_CASE("under ASan a value read after its tape was reset is poisoned memory") {
    tg::Tape<double> tape;
    auto x = tape.variable(tg::Tensor<double>(2, 3), "x");
    auto y = x * x;
    const double* stale = y.value().data();
    CHECK(__asan_region_is_poisoned(const_cast<double*>(stale), 6 * sizeof(double)) == nullptr);
    tape.reset();
    CHECK(__asan_address_is_poisoned(stale) != 0);
}
#else
TEST_CASE("under ASan the arena poisons redzones, unused memory and everything after reset" *
          doctest::skip(true)) {
    // Not an ASan build: the poisoning does not exist here; .ci/sanitize.sh runs this test.
    MESSAGE("skipped: build with -DTAPEGRAD_SANITIZE=address to test the arena's poisoning");
}
#endif
