// libFuzzer target: the snapshot reader and the chunk receiver. Mode byte 0:
// the input is a snapshot file, opened and read back in chunks. Mode 1: the
// input is a sequence of chunks (u32 offset, u16 length, bytes) received for
// a snapshot whose announced size is the first u16; finishing installs it or
// throws. Only StorageError and the documented argument errors may escape.

#include <filesystem>
#include <stdexcept>
#include <string>

#include "engine/storage/format.h"
#include "engine/storage/snapshot_store.h"
#include "tests/fuzz/fuzz_util.h"

using namespace copycat::storage;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::string directory = fuzz::scratchDirectory() + "/snapshots";
  std::filesystem::remove_all(directory);
  std::filesystem::create_directories(directory);
  const char* in = reinterpret_cast<const char*>(data);
  format::decodeSnapshotHeader(in + 1, size - 1);
  try {
    if (data[0] % 2 == 0) {
      fuzz::writeFile(directory + "/" + format::snapshotFileName(5, 1), data + 1, size - 1);
      SnapshotStore store(PosixFileSystem::instance(), directory, 2, [](const std::string&) {});
      for (std::uint64_t offset = 0; offset < store.latest().size; offset += 4096)
        store.readChunk(offset, 4096);
    } else {
      SnapshotStore store(PosixFileSystem::instance(), directory, 2, [](const std::string&) {});
      copycat::raft::SnapshotMeta meta{
          7, 2, {{1, 2}, {}}, std::uint64_t(data[1]) | std::uint64_t(data[2]) << 8};
      store.beginReceive(meta);
      std::size_t at = 3;
      while (at + 6 <= size) {
        const std::uint64_t offset = format::get32(in + at) % 70000;
        const std::size_t length =
            std::min<std::size_t>(std::uint16_t(data[at + 4] | data[at + 5] << 8), size - at - 6);
        try {
          store.receiveChunk(offset, std::string_view(in + at + 6, length));
        } catch (const std::invalid_argument&) {
        }
        at += 6 + length;
      }
      store.finishReceive();
      SnapshotStore reopened(PosixFileSystem::instance(), directory, 2, [](const std::string&) {});
      if (reopened.latest().size != meta.size || reopened.readAll().size() != meta.size) abort();
    }
  } catch (const StorageError&) {
  }
  return 0;
}
