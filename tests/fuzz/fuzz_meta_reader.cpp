// libFuzzer target: decoding meta slots and opening a meta file holding the
// input. Mode byte 1 repairs both slot checksums so the selection logic is
// explored. Opening must succeed or throw StorageError.

#include <string>

#include "engine/storage/format.h"
#include "engine/storage/meta_store.h"
#include "tests/fuzz/fuzz_util.h"

using namespace copycat::storage;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string file(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 2 == 1) {
    for (std::size_t slot = 0; slot < 2; ++slot) {
      const std::size_t at = slot * format::kMetaSlotSize;
      if (file.size() < at + 56) break;
      const std::uint32_t length = format::get32(file.data() + at + 12);
      if (length > format::kMaxClusterId || file.size() < at + 56 + length) break;
      format::put64(file.data() + at + 48 + length,
                    format::checksum(file.data() + at, 48 + length));
    }
  }
  for (std::size_t at = 0; at < file.size(); at += format::kMetaSlotSize) {
    format::decodeMetaSlot(file.data() + at, file.size() - at);
  }
  const std::string path = fuzz::scratchDirectory() + "/meta";
  fuzz::writeFile(path, reinterpret_cast<const std::uint8_t*>(file.data()), file.size());
  try {
    MetaStore store(PosixFileSystem::instance(), path, false, [](const std::string&) {});
  } catch (const StorageError&) {
  }
  return 0;
}
