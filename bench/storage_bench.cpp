// Storage micro-benchmarks (issue 3, "Measured, not asserted").
//
// Everything runs on real files with real fdatasync, in a fresh directory
// created under --dir (default: this build directory) and removed at the end.
// Do not point --dir at a tmpfs such as /dev/shm: fdatasync would not reach a
// disk and every figure would be meaningless (the program warns when it does).
//
//   BM_RawFdatasync       this machine's raw fdatasync rate: a 4 KiB pwrite at
//                         the end of a file, then fdatasync, per iteration.
//   BM_RawSequential/N    raw sequential write bandwidth with one pwrite of N
//                         bytes and one fdatasync per iteration: 64 KiB (the
//                         payload of a 256-entry batch of 256 B), 75,264 B (the
//                         bytes a 256-entry batch puts on disk, frame headers
//                         included) and 1 MiB.
//   BM_Persist/batch:N    DiskStorage::persist of a raft::Ready holding N
//                         entries of 256 B: what a runtime calls before sending
//                         a batch's messages. With entries only it is one
//                         SegmentedLog::append, i.e. one pwrite and one
//                         fdatasync (two when a segment fills up).
//   BM_PersistWithHardState/batch:256
//                         the same with a new commit index in the Ready, as a
//                         leader's steady state has: MetaStore::save then adds
//                         a pwrite but no fdatasync (a commit-only change is
//                         not synced; a new term or vote would be).
//   BM_Open/cold:0, :1    opening (index rebuild) a 1,000,000-entry log of
//                         256 B entries, built once before the first timed run;
//                         cold:1 drops the segment files from the page cache
//                         (posix_fadvise DONTNEED) before each open.
//
// Each runs 3 times, the repetitions of all benchmarks in random order (see
// kDefaultFlags). Then a summary prints the medians, each log figure beside
// the raw figure and their ratio, with the goals (reported, not
// asserted): batches of 256 reach >= 80% of raw sequential bandwidth with the
// same payload per sync (64 KiB; the ratio at the same on-disk bytes per sync
// is printed too); opening runs at >= 1,000,000 entries/s.
//
// Usage: copycat-storage-bench [--dir=PARENT] [--benchmark_* flags]
// (--benchmark_filter=Persist runs a subset; the summary shows what ran;
// --benchmark_repetitions=1 a single quicker pass).

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include "engine/raft/node.h"
#include "engine/storage/disk_storage.h"
#include "engine/storage/file_system.h"
#include "engine/storage/format.h"
#include "engine/storage/segmented_log.h"

#ifndef COPYCAT_BENCH_DEFAULT_DIR
#define COPYCAT_BENCH_DEFAULT_DIR "."
#endif

namespace {

namespace stdfs = std::filesystem;
using copycat::raft::Entry;
using copycat::raft::Index;
using copycat::raft::Ready;
using copycat::storage::DiskStorage;
using copycat::storage::PosixFileSystem;
using copycat::storage::SegmentedLog;
using copycat::storage::StorageOptions;

constexpr std::size_t kPayload = 256;
constexpr std::size_t kFrameBytes = copycat::storage::format::kFrameHeaderSize +
                                    copycat::storage::format::kEntryFixedBody + kPayload;
constexpr std::int64_t kRawSmallWrite = 4096;
constexpr std::int64_t kBatch256Payload = 256 * kPayload;                             // 65,536
constexpr std::int64_t kBatch256Disk = 256 * static_cast<std::int64_t>(kFrameBytes);  // 75,264
constexpr std::int64_t kOneMiB = 1 << 20;
constexpr Index kOpenEntries = 1'000'000;
constexpr double kMB = 1e6;
// fsync-bound benchmarks take milliseconds per iteration: a minimum time, not
// an iteration count, keeps the run short on a slow disk and stable on a fast one.
// Per repetition; see kDefaultFlags.
constexpr double kSyncMinTime = 0.7;

// fdatasync latency on a shared or virtual disk drifts by several times
// within a minute, so by default every benchmark runs 3 times, the
// repetitions of all benchmarks interleaved in random order, and the summary
// uses the medians: raw and log figures then sample the same moments.
// These come before the user's arguments, which override them.
const char* const kDefaultFlags[] = {
    "--benchmark_repetitions=3",
    "--benchmark_enable_random_interleaving=true",
    "--benchmark_display_aggregates_only=true",
};

std::string g_root;  // the fresh directory holding every file; removed at exit
int g_nextDir = 0;

// A new empty directory under g_root.
std::string freshDir(const std::string& name) {
  std::string path = g_root + "/" + name + "-" + std::to_string(++g_nextDir);
  stdfs::create_directories(path);
  return path;
}

std::string payload() {
  std::string data(kPayload, '\0');
  std::uint32_t x = 2463534242u;  // xorshift: bytes that do not compress
  for (char& c : data) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return data;
}

std::vector<Entry> makeBatch(std::size_t count) {
  std::vector<Entry> batch(count);
  const std::string data = payload();
  for (Entry& entry : batch) {
    entry.term = 1;
    entry.data = data;
  }
  return batch;
}

void renumber(std::vector<Entry>& batch, Index first) {
  for (std::size_t i = 0; i < batch.size(); ++i) batch[i].index = first + i;
}

void setRate(benchmark::State& state, const char* name, double perIteration) {
  state.counters[name] = benchmark::Counter(perIteration * static_cast<double>(state.iterations()),
                                            benchmark::Counter::kIsRate);
}

// ---- raw POSIX figures -----------------------------------------------------

// One pwrite of `bytesPerSync` at the end of a fresh file, then fdatasync.
void rawAppendSync(benchmark::State& state, std::int64_t bytesPerSync) {
  const std::string path = freshDir("raw") + "/data";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    state.SkipWithError(("open " + path + ": " + std::strerror(errno)).c_str());
    return;
  }
  const std::string data = [&] {
    std::string bytes;
    while (bytes.size() < static_cast<std::size_t>(bytesPerSync)) bytes += payload();
    bytes.resize(static_cast<std::size_t>(bytesPerSync));
    return bytes;
  }();
  off_t offset = 0;
  for (auto _ : state) {
    std::size_t done = 0;
    while (done < data.size()) {
      const ssize_t n =
          ::pwrite(fd, data.data() + done, data.size() - done, offset + static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        state.SkipWithError(("pwrite: " + std::string(std::strerror(errno))).c_str());
        break;
      }
      done += static_cast<std::size_t>(n);
    }
    if (::fdatasync(fd) != 0) {
      state.SkipWithError(("fdatasync: " + std::string(std::strerror(errno))).c_str());
      break;
    }
    offset += static_cast<off_t>(data.size());
  }
  ::close(fd);
  stdfs::remove_all(stdfs::path(path).parent_path());
  state.SetBytesProcessed(state.iterations() * bytesPerSync);
  setRate(state, "syncs/s", 1);
}

void BM_RawFdatasync(benchmark::State& state) { rawAppendSync(state, state.range(0)); }
void BM_RawSequential(benchmark::State& state) { rawAppendSync(state, state.range(0)); }

// ---- the log's write path --------------------------------------------------

void persistBatches(benchmark::State& state, bool withHardState, bool zeroAhead = true) {
  const auto count = static_cast<std::size_t>(state.range(0));
  const std::string directory = freshDir("persist");
  try {
    StorageOptions options;
    options.directory = directory;
    if (!zeroAhead) options.log.zeroAheadBytes = 0;
    DiskStorage storage(options);
    Ready ready;
    ready.entries = makeBatch(count);
    Index next = storage.lastIndex() + 1;
    for (auto _ : state) {
      renumber(ready.entries, next);
      next += count;
      if (withHardState) ready.hardState = copycat::raft::HardState{1, 1, next - 1};
      storage.persist(ready);
    }
    if (storage.lastIndex() != next - 1) state.SkipWithError("persist lost entries");
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
  }
  std::error_code ignored;
  stdfs::remove_all(directory, ignored);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(count * kFrameBytes));
  setRate(state, "entries/s", static_cast<double>(count));
  setRate(state, "syncs/s", 1);
}

void BM_Persist(benchmark::State& state) { persistBatches(state, false); }
/// The same with the log's zero-ahead writes off (preallocated blocks are then
/// first written by the appends themselves).
void BM_PersistFallocatedOnly(benchmark::State& state) { persistBatches(state, false, false); }
void BM_PersistWithHardState(benchmark::State& state) { persistBatches(state, true); }

// ---- opening a big log -----------------------------------------------------

struct BigLog {
  std::string directory;
  std::uint64_t bytes = 0;
  std::size_t segments = 0;
};

// Built on first use, reused by every later run.
const BigLog& bigLog() {
  static const BigLog log = [] {
    BigLog built;
    built.directory = freshDir("open") + "/log";
    SegmentedLog writer(PosixFileSystem::instance(), built.directory);
    // Big batches: one write and one fdatasync per 8,192 entries (per segment touched).
    std::vector<Entry> batch = makeBatch(8192);
    for (Index first = 1; first <= kOpenEntries; first += batch.size()) {
      if (kOpenEntries - first + 1 < batch.size()) batch.resize(kOpenEntries - first + 1);
      renumber(batch, first);
      writer.append(batch);
    }
    built.bytes = writer.bytes();
    built.segments = writer.segmentCount();
    return built;
  }();
  return log;
}

void dropFromPageCache(const std::string& directory) {
  for (const auto& item : stdfs::directory_iterator(directory)) {
    const int fd = ::open(item.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

void BM_Open(benchmark::State& state) {
  const bool cold = state.range(0) != 0;
  try {
    const BigLog& log = bigLog();
    for (auto _ : state) {
      if (cold) {
        state.PauseTiming();
        dropFromPageCache(log.directory);
        state.ResumeTiming();
      }
      SegmentedLog reader(PosixFileSystem::instance(), log.directory);
      if (reader.lastIndex() != kOpenEntries) {
        state.SkipWithError("the reopened log does not end at index 1,000,000");
        break;
      }
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(log.bytes));
    state.SetLabel(std::to_string(log.segments) + " segments, " +
                   std::to_string(log.bytes / 1'000'000) + " MB");
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
  }
  setRate(state, "entries/s", static_cast<double>(kOpenEntries));
}

BENCHMARK(BM_RawFdatasync)
    ->Arg(kRawSmallWrite)
    ->UseRealTime()
    ->MinTime(kSyncMinTime)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RawSequential)
    ->Arg(kBatch256Payload)
    ->Arg(kBatch256Disk)
    ->Arg(kOneMiB)
    ->UseRealTime()
    ->MinTime(kSyncMinTime)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Persist)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(16)
    ->Arg(256)
    ->UseRealTime()
    ->MinTime(kSyncMinTime)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PersistFallocatedOnly)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(16)
    ->UseRealTime()
    ->MinTime(kSyncMinTime)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PersistWithHardState)
    ->ArgName("batch")
    ->Arg(256)
    ->UseRealTime()
    ->MinTime(kSyncMinTime)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Open)->ArgNames({"cold"})->Arg(0)->Arg(1)->UseRealTime()->Iterations(5)->Unit(
    benchmark::kMillisecond);

// ---- reporting -------------------------------------------------------------

// The console output, plus the figures kept for the summary (the median
// aggregate when --benchmark_repetitions is used, else the single run).
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  using ConsoleReporter::ConsoleReporter;

  void ReportRuns(const std::vector<Run>& reports) override {
    ConsoleReporter::ReportRuns(reports);
    for (const Run& run : reports) {
      if (run.error_occurred) continue;
      const std::string name = run.run_name.function_name + "/" + run.run_name.args;
      if (run.run_type == Run::RT_Aggregate) {
        if (run.aggregate_name == "median") m_counters[name] = run.counters;
        if (run.aggregate_name == "cv") m_spread[name] = run.counters;
      } else if (run.repetitions <= 1 || m_counters.count(name) == 0) {
        m_counters[name] = run.counters;
      }
    }
  }

  std::optional<double> get(const std::string& name, const std::string& counter) const {
    const auto run = m_counters.find(name);
    if (run == m_counters.end()) return std::nullopt;
    const auto value = run->second.find(counter);
    if (value == run->second.end()) return std::nullopt;
    return value->second.value;
  }

  /// " (cv N%)": the spread of `counter` over the repetitions, if any.
  std::string spread(const std::string& name, const std::string& counter) const {
    const auto run = m_spread.find(name);
    if (run == m_spread.end()) return {};
    const auto value = run->second.find(counter);
    if (value == run->second.end()) return {};
    char text[32];
    std::snprintf(text, sizeof text, " (cv %.0f%%)", 100.0 * value->second.value);
    return text;
  }

 private:
  std::map<std::string, benchmark::UserCounters> m_counters;
  std::map<std::string, benchmark::UserCounters> m_spread;
};

std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::string percent(double ratio) { return fixed(100.0 * ratio, 0) + "%"; }

void printSummary(const SummaryReporter& r) {
  const std::string raw4k = "BM_RawFdatasync/" + std::to_string(kRawSmallWrite);
  const std::string raw64k = "BM_RawSequential/" + std::to_string(kBatch256Payload);
  const std::string rawDisk = "BM_RawSequential/" + std::to_string(kBatch256Disk);
  const std::string raw1m = "BM_RawSequential/" + std::to_string(kOneMiB);
  const auto mbps = [&](const std::string& name) -> std::optional<double> {
    const auto bytes = r.get(name, "bytes_per_second");
    if (!bytes) return std::nullopt;
    return *bytes / kMB;
  };
  const std::optional<double> rawSyncs = r.get(raw4k, "syncs/s");
  const std::optional<double> raw64kMB = mbps(raw64k);
  const std::optional<double> rawDiskMB = mbps(rawDisk);
  const std::optional<double> raw1mMB = mbps(raw1m);

  std::cout << "\n==== storage summary: medians over the repetitions, cv = their spread; MB = "
               "10^6 bytes;\n     entries of "
            << kPayload << " B payload, " << kFrameBytes << " B on disk; directory " << g_root
            << "\n";
  if (rawSyncs)
    std::cout << "raw fdatasync, 4 KiB append per sync:  " << fixed(*rawSyncs, 0) << " syncs/s"
              << r.spread(raw4k, "syncs/s") << "\n";
  if (raw64kMB)
    std::cout << "raw sequential, 1 sync per 64 KiB:     " << fixed(*raw64kMB, 2) << " MB/s"
              << r.spread(raw64k, "bytes_per_second") << "\n";
  if (rawDiskMB)
    std::cout << "raw sequential, 1 sync per " << kBatch256Disk << " B:   " << fixed(*rawDiskMB, 2)
              << " MB/s" << r.spread(rawDisk, "bytes_per_second")
              << " (the on-disk bytes of a 256-entry batch)\n";
  if (raw1mMB)
    std::cout << "raw sequential, 1 sync per 1 MiB:      " << fixed(*raw1mMB, 2) << " MB/s"
              << r.spread(raw1m, "bytes_per_second") << "\n";

  for (const char* family : {"BM_Persist", "BM_PersistWithHardState"}) {
    for (const int batch : {1, 16, 256}) {
      const std::string name = std::string(family) + "/batch:" + std::to_string(batch);
      const auto entries = r.get(name, "entries/s");
      const auto syncs = r.get(name, "syncs/s");
      if (!entries || !syncs) continue;
      const double payloadMB = *entries * kPayload / kMB;
      const double diskMB = *entries * kFrameBytes / kMB;
      std::cout << (std::string(family) == "BM_Persist" ? "persist" : "persist + hardState")
                << " batch " << batch << ": " << fixed(*entries, 0) << " entries/s"
                << r.spread(name, "entries/s") << ", " << fixed(*syncs, 0) << " batches/s, "
                << fixed(payloadMB, 2) << " MB/s payload, " << fixed(diskMB, 2)
                << " MB/s on disk\n";
      if (rawSyncs)
        std::cout << "    batches/s = " << percent(*syncs / *rawSyncs)
                  << " of the raw fdatasync rate (4 KiB per sync)\n";
      if (batch == 256) {
        if (raw64kMB) {
          const double ratio = payloadMB / *raw64kMB;
          std::cout << "    payload " << fixed(payloadMB, 2) << " MB/s = " << percent(ratio)
                    << " of raw sequential at the same payload per sync (64 KiB: "
                    << fixed(*raw64kMB, 2)
                    << " MB/s); goal >= 80%: " << (ratio >= 0.8 ? "met" : "NOT met") << "\n";
        }
        if (rawDiskMB)
          std::cout << "    on disk " << fixed(diskMB, 2)
                    << " MB/s = " << percent(diskMB / *rawDiskMB)
                    << " of raw sequential at the same bytes per sync (" << kBatch256Disk
                    << " B: " << fixed(*rawDiskMB, 2) << " MB/s)\n";
      }
    }
  }
  for (const int cold : {0, 1}) {
    const std::string name = "BM_Open/cold:" + std::to_string(cold);
    const auto entries = r.get(name, "entries/s");
    if (!entries) continue;
    std::cout << "open (index rebuild) of " << kOpenEntries << " entries, "
              << (cold ? "cold page cache" : "warm page cache") << ": " << fixed(*entries, 0)
              << " entries/s" << r.spread(name, "entries/s")
              << "; goal >= 1,000,000/s: " << (*entries >= 1e6 ? "met" : "NOT met") << "\n";
  }
  std::cout << "(raw and log figures are taken at different moments: with a large cv, a ratio "
               "far from 100% either way is the disk's drift, not the log)\n";
}

// Fresh directory under `parent`; warns when it is not on a real disk.
std::string makeRoot(const std::string& parent) {
  stdfs::create_directories(parent);
  std::string pattern = parent + "/copycat-storage-bench-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
  }
  struct statfs info {};
  constexpr long kTmpfsMagic = 0x01021994;
  constexpr long kRamfsMagic = 0x858458f6;
  if (::statfs(pattern.c_str(), &info) == 0 && (static_cast<long>(info.f_type) == kTmpfsMagic ||
                                                static_cast<long>(info.f_type) == kRamfsMagic)) {
    std::cerr << "warning: " << pattern
              << " is on tmpfs/ramfs: fdatasync does not reach a disk and the figures mean "
                 "nothing; pass --dir=<a directory on a real disk>\n";
  }
  return pattern;
}

void printHelp() {
  benchmark::PrintDefaultHelp();
  std::fprintf(stdout,
               "          [--dir=<parent>]  where the fresh, removed-afterwards directory\n"
               "                            is created (default %s); not a tmpfs\n",
               COPYCAT_BENCH_DEFAULT_DIR);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  args.insert(args.begin() + 1, const_cast<char**>(std::begin(kDefaultFlags)),
              const_cast<char**>(std::end(kDefaultFlags)));
  argc = static_cast<int>(args.size());
  args.push_back(nullptr);
  argv = args.data();
  benchmark::Initialize(&argc, argv, printHelp);
  std::string parent = COPYCAT_BENCH_DEFAULT_DIR;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--dir=", 0) == 0) {
      parent = arg.substr(6);
    } else if (arg == "--dir" && i + 1 < argc) {
      parent = argv[++i];
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  try {
    g_root = makeRoot(parent);
  } catch (const std::exception& error) {
    std::cerr << "copycat-storage-bench: " << error.what() << "\n";
    return 1;
  }
  int status = 0;
  try {
    SummaryReporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_Color
                                                   : benchmark::ConsoleReporter::OO_None);
    benchmark::RunSpecifiedBenchmarks(&reporter);
    printSummary(reporter);
  } catch (const std::exception& error) {
    std::cerr << "copycat-storage-bench: " << error.what() << "\n";
    status = 1;
  }
  std::error_code ignored;
  stdfs::remove_all(g_root, ignored);
  benchmark::Shutdown();
  return status;
}
