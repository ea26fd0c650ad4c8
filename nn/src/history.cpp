// History (CSV, SVG chart) and the progress bar.
#include <tapegrad/nn/history.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

#include <unistd.h>

#include <fmt/format.h>

#include <tapegrad/core/error.hpp>

namespace tapegrad::nn {

std::string History::csv() const {
    std::string s = "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds\n";
    for (const auto& r : records_)
        s += fmt::format("{},{:.6f},{:.6f},{:.6f},{:.6f},{:.3f}\n", r.epoch, r.train_loss, r.train_accuracy, r.test_loss,
                         r.test_accuracy, r.seconds);
    return s;
}

namespace {

struct Series {
    std::vector<double> y;
    const char* colour;
    const char* label;
};

// One panel: a framed plot area at (x0, y0) of size w × h with axis ticks and polylines.
std::string panel(double x0, double y0, double w, double h, const std::string& title, const std::vector<Series>& series,
                  bool percent) {
    double lo = INFINITY, hi = -INFINITY;
    std::size_t n = 0;
    for (const auto& s : series)
        for (double v : s.y) {
            lo = std::min(lo, v);
            hi = std::max(hi, v);
            n = std::max(n, s.y.size());
        }
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-9) lo -= 0.5 * std::max(1e-3, std::abs(lo)), hi += 0.5 * std::max(1e-3, std::abs(hi));
    const double pad = 0.05 * (hi - lo);
    lo -= pad;
    hi += pad;
    auto px = [&](std::size_t i) { return x0 + (n <= 1 ? w / 2 : w * static_cast<double>(i) / static_cast<double>(n - 1)); };
    auto py = [&](double v) { return y0 + h - h * (v - lo) / (hi - lo); };

    std::string s = fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="none" stroke="#888"/>)"
                                "\n",
                                x0, y0, w, h);
    s += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="14" text-anchor="middle">{}</text>)"
                     "\n",
                     x0 + w / 2, y0 - 10, title);
    for (int k = 0; k <= 4; ++k) {
        const double v = lo + (hi - lo) * k / 4.0;
        const double y = py(v);
        s += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#eee"/>)"
                         "\n",
                         x0, y, x0 + w, y);
        s += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="11" text-anchor="end">{}</text>)"
                         "\n",
                         x0 - 5, y + 4, percent ? fmt::format("{:.1f}%", 100 * v) : fmt::format("{:.3f}", v));
    }
    for (std::size_t i = 0; i < n; ++i)
        s += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="11" text-anchor="middle">{}</text>)"
                         "\n",
                         px(i), y0 + h + 15, i + 1);
    s += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="12" text-anchor="middle">epoch</text>)"
                     "\n",
                     x0 + w / 2, y0 + h + 32);
    double lx = x0 + w / 2 - 70;  // legend: one row under the axis label
    const double ly = y0 + h + 52;
    for (const auto& se : series) {
        if (se.y.empty()) continue;
        std::string pts;
        for (std::size_t i = 0; i < se.y.size(); ++i) pts += fmt::format("{}{:.1f},{:.1f}", i ? " " : "", px(i), py(se.y[i]));
        s += fmt::format(R"(<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>)"
                         "\n",
                         pts, se.colour);
        for (std::size_t i = 0; i < se.y.size(); ++i)
            s += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>)"
                             "\n",
                             px(i), py(se.y[i]), se.colour);
        s += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}" stroke-width="2"/>)"
                         R"(<text x="{:.1f}" y="{:.1f}" font-size="12">{}</text>)"
                         "\n",
                         lx, ly, lx + 20, ly, se.colour, lx + 25, ly + 4, se.label);
        lx += 80;
    }
    return s;
}

std::string xml_escape(const std::string& in) {
    std::string o;
    for (char c : in) {
        switch (c) {
            case '<': o += "&lt;"; break;
            case '>': o += "&gt;"; break;
            case '&': o += "&amp;"; break;
            case '"': o += "&quot;"; break;
            default: o += c;
        }
    }
    return o;
}

void write_text(const std::filesystem::path& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) fail("{}: cannot write: {}", path.string(), std::strerror(errno));
    f << text;
    if (!f) fail("{}: write failed", path.string());
}

}  // namespace

std::string History::svg(const std::string& title) const {
    std::vector<double> trl, tel, tra, tea;
    for (const auto& r : records_) {
        trl.push_back(r.train_loss);
        tel.push_back(r.test_loss);
        tra.push_back(r.train_accuracy);
        tea.push_back(r.test_accuracy);
    }
    const double W = 900, H = 400;
    std::string s = fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}">)"
                                "\n"
                                R"(<rect width="100%" height="100%" fill="white"/>)"
                                "\n"
                                R"(<text x="{}" y="22" font-size="16" text-anchor="middle" font-family="sans-serif">{}</text>)"
                                "\n<g font-family=\"sans-serif\">\n",
                                W, H, W, H, W / 2, xml_escape(title));
    s += panel(70, 60, 340, 260, "cross-entropy loss", {{trl, "#1f77b4", "train"}, {tel, "#d62728", "test"}}, false);
    s += panel(520, 60, 340, 260, "accuracy", {{tra, "#1f77b4", "train"}, {tea, "#d62728", "test"}}, true);
    s += "</g>\n</svg>\n";
    return s;
}

void History::write_csv(const std::filesystem::path& path) const { write_text(path, csv()); }
void History::write_svg(const std::filesystem::path& path, const std::string& title) const {
    write_text(path, svg(title));
}

ProgressBar::ProgressBar(std::FILE* out) : out_(out), tty_(out && ::isatty(::fileno(out))) {}

void ProgressBar::start(std::size_t epoch, std::size_t epochs, std::size_t batches, std::size_t first) {
    epoch_ = epoch;
    first_ = first;
    epochs_ = epochs;
    batches_ = batches;
    t0_ = last_ = std::chrono::steady_clock::now();
}

void ProgressBar::update(std::size_t done, std::size_t samples, double loss) {
    if (!tty_) return;
    const auto now = std::chrono::steady_clock::now();
    if (done < batches_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double el = std::chrono::duration<double>(now - t0_).count();
    const double rate = el > 0 ? static_cast<double>(samples) / el : 0;
    const std::size_t run = done > first_ ? done - first_ : 0;  // batches since start()
    const double left = run > 0 ? el * static_cast<double>(batches_ - done) / static_cast<double>(run) : 0;
    constexpr std::size_t kWidth = 30;
    const std::size_t fill = batches_ ? kWidth * done / batches_ : kWidth;
    fmt::print(out_, "\r\x1b[2Kepoch {}/{} [{}{}] {}/{}  {:.0f} samples/s  loss {:.4f}  ETA {:.0f}s", epoch_, epochs_,
               std::string(fill, '#'), std::string(kWidth - fill, '-'), done, batches_, rate, loss, left);
    std::fflush(out_);
}

void ProgressBar::finish() {
    if (!tty_) return;
    fmt::print(out_, "\r\x1b[2K");
    std::fflush(out_);
}

}  // namespace tapegrad::nn
