#pragma once

#include <atomic>
#include <stdexcept>

#include <QString>

#include "bench/copycat_bench/options.h"
#include "bench/copycat_bench/report.h"

namespace copycat::bench {

/// Set by SIGINT/SIGTERM: scenarios stop early and clean up.
extern std::atomic<bool> g_interrupted;

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

/// What every scenario gets: the options, the run's temporary directory, the
/// copycatd path (processes launcher) and the reporter.
struct RunContext {
  const Options& options;
  QString root;
  QString copycatd;
  Reporter& reporter;
  bool physicalMeasured = false;
};

/// Runs one scenario (or all); throws std::runtime_error when it cannot complete.
void runScenario(const QString& scenario, RunContext& context);

}  // namespace copycat::bench
