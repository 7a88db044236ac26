// Codec micro-benchmarks: what every operation and every snapshot pays to
// turn C++ objects into bytes and back (cereal's portable binary format).
//
//   BM_EncodePut          a PutCommand of a 10-byte key and a 256 B value, as
//                         a client encodes each write.
//   BM_DecodePut          the same bytes decoded, as every replica does when it
//                         applies the write.
//   BM_EncodeResult       the previous value a put returns (an optional of
//                         256 B), encoded by the state machine for the reply.
//   BM_SnapshotMap/keys:N/sized:S
//                         MapStateMachine's snapshot of N keys of 256 B values
//                         through a SnapshotWriter, on the state machine thread
//                         (bytes/s counts the snapshot's size); sized:1 reserves
//                         the previous snapshot's size first, as
//                         StateMachine::takeSnapshot does.
//   BM_InstallMap/N       the same snapshot read back into a fresh map.
//
// Usage: copycat-codec-bench [--benchmark_* flags]
#include <optional>
#include <string>

#include <benchmark/benchmark.h>

#include "engine/api/codec.h"
#include "engine/api/snapshot.h"
#include "engine/kv/map_state_machine.h"

namespace {

using copycat::decodeObject;
using copycat::encodeObject;
using copycat::kv::PutCommand;

std::string keyOf(int i) { return "key-" + std::to_string(i); }

void BM_EncodePut(benchmark::State& state) {
  const PutCommand put(keyOf(4242), std::string(256, 'v'));
  for (auto _ : state) benchmark::DoNotOptimize(encodeObject(put));
}
BENCHMARK(BM_EncodePut);

void BM_DecodePut(benchmark::State& state) {
  const std::string bytes = encodeObject(PutCommand(keyOf(4242), std::string(256, 'v')));
  for (auto _ : state) benchmark::DoNotOptimize(decodeObject<PutCommand>(bytes));
}
BENCHMARK(BM_DecodePut);

void BM_EncodeResult(benchmark::State& state) {
  const std::optional<std::string> previous(std::string(256, 'p'));
  for (auto _ : state) benchmark::DoNotOptimize(encodeObject(previous));
}
BENCHMARK(BM_EncodeResult);

std::map<std::string, std::string> mapOf(int keys) {
  std::map<std::string, std::string> map;
  for (int i = 0; i < keys; ++i)
    map.emplace(keyOf(i), std::string(256, static_cast<char>('a' + i % 26)));
  return map;
}

void BM_SnapshotMap(benchmark::State& state) {
  const std::map<std::string, std::string> map = mapOf(static_cast<int>(state.range(0)));
  std::size_t bytes = 0;
  const bool hinted = state.range(1) != 0;
  for (auto _ : state) {
    copycat::SnapshotWriter writer(hinted ? bytes : 0);
    writer.writeObject(map);
    const std::string snapshot = std::move(writer).bytes();
    bytes = snapshot.size();
    benchmark::DoNotOptimize(snapshot.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes) * state.iterations());
}
BENCHMARK(BM_SnapshotMap)
    ->ArgNames({"keys", "sized"})
    ->Args({10000, 0})
    ->Args({10000, 1})
    ->Unit(benchmark::kMillisecond);

void BM_InstallMap(benchmark::State& state) {
  copycat::SnapshotWriter writer;
  writer.writeObject(mapOf(static_cast<int>(state.range(0))));
  const std::string snapshot = std::move(writer).bytes();
  for (auto _ : state) {
    copycat::SnapshotReader reader(snapshot);
    benchmark::DoNotOptimize(reader.readObject<std::map<std::string, std::string>>());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(snapshot.size()) * state.iterations());
}
BENCHMARK(BM_InstallMap)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
