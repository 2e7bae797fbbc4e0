#pragma once
// The learned cost model: gradient-boosted trees (XGBoost, as AutoTVM and Ansor use) over the loop-IR
// features of features.hpp, predicting a candidate's speed relative to the fastest measured so far, so
// the search measures only what the model ranks highest. It is retrained from every measurement after
// each round (a few hundred rows train in milliseconds), and saved next to the records.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <xgboost/c_api.h>

#include "kiln/autotune/features.hpp"
#include "kiln/error.hpp"

namespace kiln::autotune {

class CostModel {
public:
    // A measurement: the candidate's features and its time per call. One model can learn from several
    // tasks (a model's kernels): `task` says which, and times are compared only within a task.
    void add(const Features& f, double seconds, int task = 0) {
        features_.push_back(f);
        seconds_.push_back(seconds);
        tasks_.push_back(task);
    }
    size_t size() const { return seconds_.size(); }
    bool trained() const { return booster_ != nullptr; }

    // Fits to every measurement so far, the label being its task's fastest time over this one's (1 for the
    // best, towards 0 for the slowest).
    void train(int rounds = 60) {
        if (seconds_.empty()) return;
        std::map<int, double> fastest;
        for (size_t i = 0; i < seconds_.size(); ++i) {
            auto [it, fresh] = fastest.emplace(tasks_[i], seconds_[i]);
            if (!fresh) it->second = std::min(it->second, seconds_[i]);
        }
        std::vector<float> labels;
        for (size_t i = 0; i < seconds_.size(); ++i)
            labels.push_back(static_cast<float>(fastest.at(tasks_[i]) / seconds_[i]));
        Matrix m(features_);
        check(XGDMatrixSetFloatInfo(m.handle, "label", labels.data(), labels.size()), "set the labels");
        BoosterHandle b = nullptr;
        check(XGBoosterCreate(&m.handle, 1, &b), "create a model");
        std::unique_ptr<void, decltype(&XGBoosterFree)> fresh(b, &XGBoosterFree);
        for (auto [name, value] : {std::pair{"max_depth", "6"},
                                   {"eta", "0.2"},
                                   {"subsample", "1.0"},
                                   {"objective", "reg:squarederror"},
                                   {"nthread", "1"},
                                   {"verbosity", "0"}})
            check(XGBoosterSetParam(b, name, value), "set a parameter");
        for (int r = 0; r < rounds; ++r) check(XGBoosterUpdateOneIter(b, r, m.handle), "train");
        booster_ = std::shared_ptr<void>(fresh.release(), &XGBoosterFree);
    }

    // Higher is predicted faster; all zero before the first training.
    std::vector<float> predict(const std::vector<Features>& rows) const {
        if (!booster_ || rows.empty()) return std::vector<float>(rows.size(), 0.f);
        Matrix m(rows);
        bst_ulong n = 0;
        const float* out = nullptr;
        check(XGBoosterPredict(booster_.get(), m.handle, 0, 0, 0, &n, &out), "predict");
        return std::vector<float>(out, out + n);
    }

    void save(const std::string& path) const {
        if (!booster_) kiln::detail::fail("cost model: nothing to save to '", path, "' before the model is trained");
        if (XGBoosterSaveModel(booster_.get(), path.c_str()) != 0)
            kiln::detail::fail("cost model: cannot save to '", path, "': ", XGBGetLastError());
    }

private:
    struct Matrix {
        DMatrixHandle handle = nullptr;
        explicit Matrix(const std::vector<Features>& rows) {
            std::vector<float> flat;
            for (const Features& f : rows) flat.insert(flat.end(), f.begin(), f.end());
            check(XGDMatrixCreateFromMat(flat.data(), rows.size(), kFeatureCount, std::nanf(""), &handle),
                  "build a matrix");
        }
        ~Matrix() { XGDMatrixFree(handle); }
        Matrix(const Matrix&) = delete;
        Matrix& operator=(const Matrix&) = delete;
    };
    static void check(int status, const char* what) {
        if (status != 0) kiln::detail::internal_fail("XGBoost could not ", what, ": ", XGBGetLastError());
    }

    std::vector<Features> features_;
    std::vector<double> seconds_;
    std::vector<int> tasks_;
    std::shared_ptr<void> booster_;
};

// Of the pairs of measurements with different times, the share the prediction orders the same way: 0.5 is
// chance, 1 a perfect ranking.
inline double pairwise_accuracy(const std::vector<float>& predicted, const std::vector<double>& seconds,
                                size_t* pairs_out = nullptr) {
    size_t pairs = 0, right = 0;
    for (size_t i = 0; i < seconds.size(); ++i)
        for (size_t j = i + 1; j < seconds.size(); ++j) {
            if (seconds[i] == seconds[j]) continue;
            ++pairs;
            // Faster (fewer seconds) should have the higher prediction.
            if ((seconds[i] < seconds[j]) == (predicted[i] > predicted[j])) ++right;
        }
    if (pairs_out) *pairs_out = pairs;
    return pairs ? static_cast<double>(right) / static_cast<double>(pairs) : 0.5;
}

}  // namespace kiln::autotune
