// Test helpers for error messages, shared by the test files: the message of the tapegrad::Error a
// call throws, and a substring test. Include after doctest or not at all.
#pragma once

#include <string>
#include <string_view>

#include <tapegrad/core/error.hpp>

// The message of the tapegrad::Error that f() throws, or "" when it throws none.
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const tapegrad::Error& e) {
        return e.what();
    }
    return "";
}

// Whether `part` occurs in s.
inline bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }
