#include "engine/storage/format.h"

#include <charconv>
#include <cstdio>

#include <xxhash.h>

namespace copycat::storage::format {

std::uint64_t checksum(const void* data, std::size_t length, std::uint64_t seed) {
  return XXH3_64bits_withSeed(data, length, seed);
}

void encodeSegmentHeader(const SegmentHeader& header, char out[kSegmentHeaderSize]) {
  put64(out, kSegmentMagic);
  put32(out + 8, kVersion);
  put32(out + 12, kSegmentHeaderSize);
  put64(out + 16, header.id);
  put64(out + 24, header.firstIndex);
  put64(out + 32, header.prevTerm);
  put64(out + 40, checksum(out, 40));
}

std::optional<SegmentHeader> decodeSegmentHeader(const char* in, std::size_t length) {
  if (length < kSegmentHeaderSize) return std::nullopt;
  if (get64(in) != kSegmentMagic || get32(in + 8) != kVersion ||
      get32(in + 12) != kSegmentHeaderSize || get64(in + 40) != checksum(in, 40)) {
    return std::nullopt;
  }
  SegmentHeader header;
  header.id = get64(in + 16);
  header.firstIndex = get64(in + 24);
  header.prevTerm = get64(in + 32);
  if (header.firstIndex == 0) return std::nullopt;
  return header;
}

void encodeEntry(const raft::Entry& entry, std::string& out) {
  const std::size_t start = out.size();
  const std::size_t body = kEntryFixedBody + entry.data.size();
  out.resize(start + kFrameHeaderSize + kEntryFixedBody);
  char* p = out.data() + start;
  put32(p, static_cast<std::uint32_t>(body));
  put64(p + 12, entry.term);
  put64(p + 20, entry.index);
  p[28] = static_cast<char>(entry.type);
  p[29] = static_cast<char>(entry.change.kind);
  put64(p + 30, entry.change.node);
  out.append(entry.data);
  p = out.data() + start;
  put64(p + 4, checksum(p + kFrameHeaderSize, body, body));
}

std::optional<FrameView> checkFrame(const char* in, std::size_t length) {
  if (length < kFrameHeaderSize + kEntryFixedBody) return std::nullopt;
  const std::uint32_t body = get32(in);
  if (body < kEntryFixedBody || body > kEntryFixedBody + kMaxPayload) return std::nullopt;
  if (length - kFrameHeaderSize < body) return std::nullopt;
  if (static_cast<unsigned char>(in[28]) > static_cast<unsigned>(raft::EntryType::ConfigChange) ||
      static_cast<unsigned char>(in[29]) >
          static_cast<unsigned>(raft::ConfigChange::Kind::Remove)) {
    return std::nullopt;
  }
  if (get64(in + 4) != checksum(in + kFrameHeaderSize, body, body)) return std::nullopt;
  return FrameView{kFrameHeaderSize + body, get64(in + 12), get64(in + 20)};
}

raft::Entry decodeEntry(const char* in) {
  const std::uint32_t body = get32(in);
  raft::Entry entry;
  entry.term = get64(in + 12);
  entry.index = get64(in + 20);
  entry.type = static_cast<raft::EntryType>(in[28]);
  entry.change.kind = static_cast<raft::ConfigChange::Kind>(in[29]);
  entry.change.node = get64(in + 30);
  entry.data.assign(in + kFrameHeaderSize + kEntryFixedBody, body - kEntryFixedBody);
  return entry;
}

void encodeMetaSlot(const MetaSlot& slot, char out[kMetaSlotSize]) {
  std::memset(out, 0, kMetaSlotSize);
  const std::size_t idLength = std::min(slot.clusterId.size(), kMaxClusterId);
  put64(out, kMetaMagic);
  put32(out + 8, kVersion);
  put32(out + 12, static_cast<std::uint32_t>(idLength));
  put64(out + 16, slot.sequence);
  put64(out + 24, slot.term);
  put64(out + 32, slot.vote);
  put64(out + 40, slot.commit);
  std::memcpy(out + 48, slot.clusterId.data(), idLength);
  put64(out + 48 + idLength, checksum(out, 48 + idLength));
}

std::optional<MetaSlot> decodeMetaSlot(const char* in, std::size_t length) {
  if (length < 56) return std::nullopt;
  if (get64(in) != kMetaMagic || get32(in + 8) != kVersion) return std::nullopt;
  const std::uint32_t idLength = get32(in + 12);
  if (idLength > kMaxClusterId || 56 + std::size_t(idLength) > length) return std::nullopt;
  if (get64(in + 48 + idLength) != checksum(in, 48 + idLength)) return std::nullopt;
  MetaSlot slot;
  slot.sequence = get64(in + 16);
  slot.term = get64(in + 24);
  slot.vote = get64(in + 32);
  slot.commit = get64(in + 40);
  slot.clusterId.assign(in + 48, idLength);
  return slot;
}

std::string encodeSnapshotHeader(const SnapshotHeader& header) {
  const raft::Membership& members = header.meta.membership;
  const std::size_t count = members.voters.size() + members.learners.size();
  std::string out(56 + 8 * count + 8, '\0');
  char* p = out.data();
  put64(p, kSnapshotMagic);
  put32(p + 8, kVersion);
  put32(p + 12, static_cast<std::uint32_t>(out.size()));
  put64(p + 16, header.meta.index);
  put64(p + 24, header.meta.term);
  put64(p + 32, header.meta.size);
  put64(p + 40, header.dataChecksum);
  put32(p + 48, static_cast<std::uint32_t>(members.voters.size()));
  put32(p + 52, static_cast<std::uint32_t>(members.learners.size()));
  std::size_t at = 56;
  for (raft::NodeId id : members.voters) put64(p + at, id), at += 8;
  for (raft::NodeId id : members.learners) put64(p + at, id), at += 8;
  put64(p + at, checksum(p, at));
  return out;
}

std::optional<std::size_t> snapshotHeaderSize(const char* in, std::size_t length) {
  if (length < 56) return std::nullopt;
  if (get64(in) != kSnapshotMagic || get32(in + 8) != kVersion) return std::nullopt;
  const std::uint64_t count = std::uint64_t(get32(in + 48)) + get32(in + 52);
  if (count > kMaxSnapshotMembers) return std::nullopt;
  const std::size_t size = 56 + 8 * static_cast<std::size_t>(count) + 8;
  if (get32(in + 12) != size) return std::nullopt;
  return size;
}

std::optional<SnapshotHeader> decodeSnapshotHeader(const char* in, std::size_t length) {
  const std::optional<std::size_t> size = snapshotHeaderSize(in, length);
  if (!size || length < *size) return std::nullopt;
  if (get64(in + *size - 8) != checksum(in, *size - 8)) return std::nullopt;
  SnapshotHeader header;
  header.meta.index = get64(in + 16);
  header.meta.term = get64(in + 24);
  header.meta.size = get64(in + 32);
  header.dataChecksum = get64(in + 40);
  const std::uint32_t voters = get32(in + 48);
  const std::uint32_t learners = get32(in + 52);
  std::size_t at = 56;
  for (std::uint32_t i = 0; i < voters; ++i, at += 8)
    header.meta.membership.voters.push_back(get64(in + at));
  for (std::uint32_t i = 0; i < learners; ++i, at += 8) {
    header.meta.membership.learners.push_back(get64(in + at));
  }
  return header;
}

namespace {

std::string number20(std::uint64_t value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%020llu", static_cast<unsigned long long>(value));
  return buffer;
}

std::optional<std::uint64_t> parse20(std::string_view text) {
  if (text.size() != 20) return std::nullopt;
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::string segmentFileName(std::uint64_t id) { return "segment-" + number20(id) + ".log"; }

std::optional<std::uint64_t> parseSegmentFileName(std::string_view name) {
  constexpr std::string_view prefix = "segment-";
  constexpr std::string_view suffix = ".log";
  if (name.size() != prefix.size() + 20 + suffix.size() || !name.starts_with(prefix) ||
      !name.ends_with(suffix)) {
    return std::nullopt;
  }
  return parse20(name.substr(prefix.size(), 20));
}

std::string snapshotFileName(raft::Index index, raft::Term term) {
  return "snapshot-" + number20(index) + "-" + number20(term) + ".snap";
}

bool isSnapshotFileName(std::string_view name) {
  return name.size() == 9 + 20 + 1 + 20 + 5 && name.starts_with("snapshot-") &&
         name.ends_with(".snap");
}

}  // namespace copycat::storage::format
