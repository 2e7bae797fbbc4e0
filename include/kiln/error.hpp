#pragma once
// kiln::Error is the one exception type kiln throws for misuse: bad schedules, bad calls, bad models.
#include <sstream>
#include <stdexcept>
#include <string>

namespace kiln {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {
// Builds a message from streamable pieces, so call sites read as one sentence.
template <typename... Parts>
[[noreturn]] inline void fail(const Parts&... parts) {
    std::ostringstream os;
    (os << ... << parts);
    throw Error(os.str());
}
}  // namespace detail

}  // namespace kiln
