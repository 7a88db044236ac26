// libFuzzer target: opening a log whose newest segment file holds the input.
// Mode byte: 0 the rest is the whole file; 1 a valid header is prepended;
// 2 a valid header is prepended and frame checksums are repaired, so the
// index/term/tail rules are explored. Opening must either succeed (and every
// entry read back) or throw StorageError; nothing else.

#include <filesystem>
#include <string>

#include "engine/storage/format.h"
#include "engine/storage/segmented_log.h"
#include "tests/fuzz/fuzz_util.h"

using namespace copycat::storage;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  std::string file;
  if (mode > 0) {
    char header[format::kSegmentHeaderSize];
    format::encodeSegmentHeader({1, 1, 0}, header);
    file.assign(header, sizeof header);
  }
  const std::size_t start = file.size();
  file.append(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode == 2) {
    std::size_t at = start;
    while (at + format::kFrameHeaderSize + format::kEntryFixedBody <= file.size()) {
      const std::uint32_t body = format::get32(file.data() + at);
      if (body < format::kEntryFixedBody || at + format::kFrameHeaderSize + body > file.size())
        break;
      format::put64(file.data() + at + 4,
                    format::checksum(file.data() + at + format::kFrameHeaderSize, body, body));
      at += format::kFrameHeaderSize + body;
    }
  }
  const std::string directory = fuzz::scratchDirectory() + "/log";
  std::filesystem::remove_all(directory);
  std::filesystem::create_directories(directory);
  fuzz::writeFile(directory + "/" + format::segmentFileName(1),
                  reinterpret_cast<const std::uint8_t*>(file.data()), file.size());
  try {
    SegmentedLogOptions options;
    options.warn = [](const std::string&) {};
    SegmentedLog log(PosixFileSystem::instance(), directory, options);
    if (log.lastIndex() >= log.firstIndex()) log.entries(log.firstIndex(), log.lastIndex() + 1);
  } catch (const StorageError&) {
  }
  return 0;
}
