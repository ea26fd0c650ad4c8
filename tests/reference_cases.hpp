// PyTorch fixtures in the test suite, shared by the test files: the reader of the case files
// written by tests/reference/*.py (make_cases.py's format) and the one comparison every fixture
// uses, ≤ 1e-12·max(1, ‖reference‖∞). Include after doctest.
//
// Case file format, one record a line:
//   case <key>
//   tensor <name> <rank> <dim>… <value>…      (row-major, as text that std::stod reads: nan, inf)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

struct ReferenceCase {
    std::string key;
    std::map<std::string, tapegrad::Tensor<double>> t;
};

// The cases of tests/reference/<file>.
inline std::vector<ReferenceCase> read_reference_cases(const std::string& file) {
    std::ifstream in(std::string(TAPEGRAD_SOURCE_DIR) + "/tests/reference/" + file);
    REQUIRE(in.good());
    std::vector<ReferenceCase> cases;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ss(line);
        std::string word;
        ss >> word;
        if (word == "case") {
            cases.push_back({});
            ss >> cases.back().key;
        } else if (word == "tensor") {
            REQUIRE(!cases.empty());
            std::string name;
            std::size_t rank = 0;
            ss >> name >> rank;
            std::vector<std::size_t> d(rank);
            for (auto& e : d) ss >> e;
            tapegrad::Tensor<double> v(tapegrad::Shape::from_range(d.begin(), d.end()));
            for (std::size_t i = 0; i < v.size(); ++i) {
                std::string x;
                ss >> x;
                v[i] = std::stod(x);
            }
            cases.back().t.insert_or_assign(name, v);
        }
    }
    return cases;
}

// s cut at every `sep` ("a;b;" → "a", "b", "").
inline std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::string cur;
    for (char ch : s) {
        if (ch == sep) {
            out.push_back(cur);
            cur.clear();
        } else {
            cur += ch;
        }
    }
    out.push_back(cur);
    return out;
}

// got (any strides) within 1e-12·max(1, ‖ref‖∞) of ref element by element (‖·‖∞ over the finite
// entries); a NaN or ±∞ of ref must be matched exactly (NaN by NaN).
inline void check_fixture_values(const std::string& what, const tapegrad::Tensor<double>& got_in,
                                 std::span<const double> ref) {
    INFO(what);
    REQUIRE(got_in.size() == ref.size());
    const tapegrad::Tensor<double> got = got_in.is_contiguous() ? got_in : tapegrad::contiguous(got_in);
    double scale = 1;
    for (double r : ref)
        if (std::isfinite(r)) scale = std::max(scale, std::abs(r));
    double err = 0;
    std::size_t special_mismatches = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
        if (!std::isfinite(ref[i])) {
            special_mismatches += !((std::isnan(ref[i]) && std::isnan(got[i])) || got[i] == ref[i]);
            continue;
        }
        const double d = std::abs(got[i] - ref[i]);
        if (!(d <= err)) err = d;  // (a NaN in got propagates)
    }
    INFO("max abs error ", err, ", tolerance ", 1e-12 * scale);
    CHECK(special_mismatches == 0);
    CHECK(err <= 1e-12 * scale);
}
inline void check_fixture_values(const std::string& what, const tapegrad::Tensor<double>& got,
                                 const tapegrad::Tensor<double>& ref) {
    INFO(what);
    REQUIRE(got.shape() == ref.shape());
    const tapegrad::Tensor<double> r = ref.is_contiguous() ? ref : tapegrad::contiguous(ref);
    check_fixture_values(what, got, std::span<const double>(r.data(), r.size()));
}
