#pragma once
// Knobs: the choices a schedule template leaves open, in the style of AutoTVM's cfg.define_knob and
// cfg.define_split. A template is a function that builds a Schedule and asks a Knobs for every number it
// could tune; called with default Knobs it declares the space and gets each knob's default, called with
// a configuration it gets that configuration's values. The tuner (kiln/autotune/) measures configurations;
// templates never depend on it.
#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kiln/error.hpp"

namespace kiln {

// One open choice of a template: a named list of values, each one number (a knob) or the factors of a
// split, outermost first.
struct Knob {
    enum Kind { Choice, Split } kind = Choice;
    std::string name;
    std::vector<std::vector<int64_t>> values;
};

// The knobs a template declares, in the order it declares them. A configuration picks one value of each.
struct KnobSpace {
    std::vector<Knob> knobs;

    // How many configurations there are (saturating at INT64_MAX).
    int64_t size() const {
        int64_t n = 1;
        for (const Knob& k : knobs) {
            const auto m = static_cast<int64_t>(k.values.size());
            n = n > INT64_MAX / m ? INT64_MAX : n * m;
        }
        return n;
    }
    const Knob* find(const std::string& name) const {
        for (const Knob& k : knobs)
            if (k.name == name) return &k;
        return nullptr;
    }
};

// A configuration: for each knob, the index of its value in the space. Empty: every knob's default
// (the first value).
using KnobConfig = std::vector<int>;
using KnobValues = std::map<std::string, std::vector<int64_t>>;

// The values a configuration picks, by knob name (as records store them).
inline KnobValues values_of(const KnobSpace& space, const KnobConfig& config) {
    KnobValues out;
    for (size_t i = 0; i < space.knobs.size() && i < config.size(); ++i)
        out[space.knobs[i].name] = space.knobs[i].values.at(static_cast<size_t>(config[i]));
    return out;
}

// The configuration that picks `values`; nullopt when they name other knobs or values the space does not
// hold (a template changed since they were recorded).
inline std::optional<KnobConfig> config_of(const KnobSpace& space, const KnobValues& values) {
    if (values.size() != space.knobs.size()) return std::nullopt;
    KnobConfig c;
    for (const Knob& k : space.knobs) {
        auto it = values.find(k.name);
        if (it == values.end()) return std::nullopt;
        auto v = std::find(k.values.begin(), k.values.end(), it->second);
        if (v == k.values.end()) return std::nullopt;
        c.push_back(static_cast<int>(v - k.values.begin()));
    }
    return c;
}

class Knobs {
public:
    // Every knob at its default; the calls declare the space (space()).
    Knobs() = default;
    // The values `config` picks from `space`; a template that declares other knobs than the space holds is
    // an error, since the tuner could not reproduce what it measured.
    Knobs(KnobSpace space, KnobConfig config) : space_(std::move(space)), config_(std::move(config)), fixed_(true) {
        if (config_.size() != space_.knobs.size())
            detail::fail("knobs: a configuration of ", config_.size(), " value(s) for a space of ", space_.knobs.size(),
                         " knob(s); take configurations from the same template's space");
        for (size_t i = 0; i < config_.size(); ++i)
            if (config_[i] < 0 || config_[i] >= static_cast<int>(space_.knobs[i].values.size()))
                detail::fail("knobs: knob '", space_.knobs[i].name, "' has ", space_.knobs[i].values.size(),
                             " value(s) and the configuration picks number ", config_[i]);
    }

    // One of `values`; the first is the default.
    int64_t knob(const std::string& name, const std::vector<int64_t>& values) {
        if (values.empty()) detail::fail("knobs: knob '", name, "' is declared with no values; give at least one");
        std::vector<std::vector<int64_t>> as_lists;
        for (int64_t v : values) as_lists.push_back({v});
        return declare(Knob{Knob::Choice, name, std::move(as_lists)})[0];
    }

    // Factors that split a loop of `extent` into `parts` loops, outermost first: the inner factors are
    // divisors of the extent or powers of two (a factor that does not divide leaves a guarded tail), and
    // the outermost covers the rest. The default is `default_inner` (the inner factors), else no split.
    // `max_innermost` (when positive) bounds the innermost factor, for a loop that is unrolled or vectorized.
    std::vector<int64_t> split(const std::string& name, int64_t extent, int parts,
                               const std::vector<int64_t>& default_inner = {}, int64_t max_innermost = 0) {
        if (extent < 1)
            detail::fail("knobs: split '", name, "' of a loop of extent ", extent, "; the extent must be positive");
        if (parts < 2)
            detail::fail("knobs: split '", name, "' into ", parts, " part(s); a split makes 2 or more loops");
        if (!default_inner.empty() && default_inner.size() != static_cast<size_t>(parts - 1))
            detail::fail("knobs: split '", name, "' into ", parts, " parts has ", parts - 1,
                         " inner factor(s), and its default gives ", default_inner.size());
        std::vector<int64_t> factors;
        for (int64_t f = 1; f <= extent; ++f)
            if (extent % f == 0 || (f & (f - 1)) == 0) factors.push_back(f);
        std::vector<std::vector<int64_t>> values;
        std::vector<int64_t> inner;
        // Every tuple of inner factors whose product stays within the extent.
        auto grow = [&](auto&& self, int64_t product) -> void {
            if (static_cast<int>(inner.size()) == parts - 1) {
                std::vector<int64_t> v{(extent + product - 1) / product};
                v.insert(v.end(), inner.begin(), inner.end());
                values.push_back(std::move(v));
                return;
            }
            const bool innermost = static_cast<int>(inner.size()) == parts - 2;
            for (int64_t f : factors) {
                if (product * f > extent || (innermost && max_innermost > 0 && f > max_innermost)) break;
                inner.push_back(f);
                self(self, product * f);
                inner.pop_back();
            }
        };
        grow(grow, 1);
        if (!default_inner.empty()) {
            auto is_default = [&](const std::vector<int64_t>& v) {
                return std::equal(v.begin() + 1, v.end(), default_inner.begin());
            };
            auto it = std::find_if(values.begin(), values.end(), is_default);
            if (it == values.end())
                detail::fail("knobs: split '", name, "' of extent ", extent,
                             ": the default inner factors are not among its values (each is a divisor of the extent or "
                             "a power of two, and together they are at most the extent)");
            std::rotate(values.begin(), it, it + 1);
        }
        return declare(Knob{Knob::Split, name, std::move(values)});
    }

    // What the calls so far declared (with default Knobs), or the space given.
    const KnobSpace& space() const { return space_; }
    // How many knobs the calls so far declared or read.
    size_t declared() const { return next_; }

private:
    std::vector<int64_t> declare(Knob k) {
        const size_t i = next_++;
        if (!fixed_) {
            if (space_.find(k.name))
                detail::fail("knobs: knob '", k.name, "' is declared twice; give each knob its own name");
            space_.knobs.push_back(std::move(k));
            return space_.knobs.back().values[0];
        }
        if (i >= space_.knobs.size() || space_.knobs[i].name != k.name || space_.knobs[i].values != k.values)
            detail::fail("knobs: the template declared knob '", k.name, "' as its number ", i + 1,
                         ", which the space does not hold in that place with those values; a template must declare "
                         "the same knobs, in the same order, whatever values it is given");
        return space_.knobs[i].values[static_cast<size_t>(config_[i])];
    }

    KnobSpace space_;
    KnobConfig config_;
    bool fixed_ = false;
    size_t next_ = 0;
};

}  // namespace kiln
