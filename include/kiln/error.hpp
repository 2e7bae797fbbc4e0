#pragma once
// kiln::Error is the exception kiln throws for misuse: bad schedules, bad calls, bad models. Its message
// names the tensor, stage, axis or model node and the rule broken, and says what to do instead.
// kiln::InternalError, an Error too, is kiln's own fault (a pass or backend broke an invariant), as
// Halide's internal_assert: not the caller's to fix, but to report.
#include <sstream>
#include <stdexcept>
#include <string>

namespace kiln {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message, std::string node = {})
            : std::runtime_error(message), node_(std::move(node)) {}
    // The model node the error is about, as messages name it ("node 'conv1' (Conv)"); empty for none.
    const std::string& node() const { return node_; }

private:
    std::string node_;
};

class InternalError : public Error {
public:
    using Error::Error;
};

namespace detail {

template <typename... Parts> std::string message(const Parts&... parts) {
    std::ostringstream os;
    (os << ... << parts);
    return os.str();
}

// Builds a message from streamable pieces, so call sites read as one sentence.
template <typename... Parts> [[noreturn]] inline void fail(const Parts&... parts) { throw Error(message(parts...)); }

// An invariant of kiln's own code that does not hold.
template <typename... Parts> [[noreturn]] inline void internal_fail(const Parts&... parts) {
    throw InternalError(
            "internal error: " + message(parts...) +
            " (a fault in kiln, not in the calling program; please report it with the program that shows it)");
}

}  // namespace detail

}  // namespace kiln
