// Shared by the libFuzzer targets: a scratch directory and file writing.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

#include <stdlib.h>

namespace fuzz {

/// A private directory under /tmp (or $TMPDIR) created once per process.
inline const std::string& scratchDirectory() {
  static const std::string directory = [] {
    const char* base = getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/copycat-fuzz-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) abort();
    return pattern;
  }();
  return directory;
}

inline void writeFile(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

}  // namespace fuzz
