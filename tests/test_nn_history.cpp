// Training history output: CSV rows and the SVG chart.
#include <doctest/doctest.h>

#include <string>

#include <tapegrad/nn/history.hpp>

namespace nn = tapegrad::nn;

namespace {
std::size_t count(const std::string& s, const std::string& part) {
    std::size_t n = 0;
    for (std::size_t at = s.find(part); at != std::string::npos; at = s.find(part, at + 1)) ++n;
    return n;
}
}  // namespace

TEST_CASE("the history CSV has a header and one row per epoch") {
    nn::History h;
    h.add({1, 0.5, 0.8, 0.45, 0.82, 1.5});
    h.add({2, 0.4, 0.85, 0.41, 0.84, 1.4});
    const std::string csv = h.csv();
    CHECK(csv.rfind("epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds\n", 0) == 0);
    CHECK(count(csv, "\n") == 3);
    CHECK(csv.find("2,0.400000,0.850000,0.410000,0.840000,1.400\n") != std::string::npos);
}

TEST_CASE("the SVG chart draws a train and a test curve in each of its two panels") {
    nn::History h;
    for (std::size_t e = 1; e <= 4; ++e) h.add({e, 1.0 / e, 0.7 + 0.05 * e, 1.1 / e, 0.68 + 0.05 * e, 1.0});
    const std::string svg = h.svg("a <title> & more");
    CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
    CHECK(svg.find("</svg>") != std::string::npos);
    CHECK(count(svg, "<polyline") == 4);
    CHECK(count(svg, "<circle") == 16);
    CHECK(svg.find("a &lt;title&gt; &amp; more") != std::string::npos);
    CHECK(svg.find("<title>") == std::string::npos);
}

TEST_CASE("a history with one epoch or none still gives a valid chart") {
    nn::History h;
    CHECK(h.svg("empty").find("</svg>") != std::string::npos);
    h.add({1, 0.3, 0.9, 0.3, 0.9, 1.0});
    const std::string svg = h.svg("one");
    CHECK(svg.find("nan") == std::string::npos);
    CHECK(svg.find("inf") == std::string::npos);
}
