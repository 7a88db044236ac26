#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

namespace copycat::bench {

/// Monotonic nanoseconds (steady_clock).
std::int64_t nowNs();

/// Percentiles of a set of latencies, every one recorded (no histogram error).
struct LatencySummary {
  std::uint64_t count = 0;
  double meanMs = 0, p50Ms = 0, p90Ms = 0, p99Ms = 0, p999Ms = 0, maxMs = 0;
};

/// Sorts `ns` and summarizes it (nearest-rank percentiles).
LatencySummary summarize(std::vector<std::int64_t>& ns);

/// CPU seconds (user + system) of this process, from getrusage.
double selfCpuSeconds();
/// CPU seconds (user + system) of process `pid` from /proc/<pid>/stat; -1 when
/// it cannot be read (the process is gone).
double processCpuSeconds(pid_t pid);

}  // namespace copycat::bench
