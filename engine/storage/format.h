#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "engine/raft/types.h"

/*
 * On-disk format of Copycat storage, version 1. All integers are unsigned and
 * little-endian; every checksum is XXH3_64bits (xxHash) as noted per field.
 * A storage directory holds:
 *
 *   log/segment-<id, 20 digits>.log   the log, in segments (SegmentedLog)
 *   meta                              term, vote, commit, cluster id (MetaStore)
 *   snapshots/snapshot-<index, 20 digits>-<term, 20 digits>.snap
 *                                     state machine snapshots (SnapshotStore)
 *   *.tmp                             files being written (a received snapshot:
 *                                     *.recv.tmp); never read, removed on open
 *   snapshots/...snap.corrupt         damaged snapshots set aside; never read
 *
 * SEGMENT FILE = header (48 bytes), then entry frames back to back.
 *   header:  0 u64 magic "CCATSEG1"   8 u32 format version (1)  12 u32 header
 *            size (48)  16 u64 segment id (increasing, from 1)  24 u64 first
 *            index (of the first entry this segment holds or will hold)  32 u64
 *            prev term (term of entry first index - 1; 0 if none)  40 u64
 *            XXH3 of bytes 0..39.
 *   frame:   0 u32 body length L (26 <= L <= 26 + 64 MiB)  4 u64 XXH3 of
 *            the L body bytes with seed L  12 body: u64 term, u64 index, u8 type
 *            (0 Normal, 1 Noop, 2 ConfigChange), u8 change kind, u64 change node,
 *            then L - 26 payload bytes.
 *   Indexes are consecutive within a segment and across segments (segment
 *   k+1 starts at segment k's last index + 1); terms never decrease. A new
 *   segment is created as a .tmp file holding just the header, synced,
 *   renamed and the directory synced, so a segment file always has a valid
 *   header. The newest segment is preallocated (fallocate) to the maximum
 *   segment size: its unused end is zero bytes, so that an append's
 *   fdatasync need not change the file size. Appends also write real zeros
 *   up to 1 MiB ahead of themselves (in the same write), so that a sync rarely
 *   has to record newly written extents; zeros read the same either way. A segment is trimmed to
 * its last frame (truncate, fdatasync) before the next one is created. Entries are appended in
 * batches, one write and one fdatasync per batch and segment touched (group commit); the previous
 * segment is synced before a new one is started. Whole segments are removed newest first (suffix
 * truncation) or oldest first (compaction), each removal followed by a directory fsync, so a crash
 * never leaves a gap between segments.
 *
 * META FILE = two 512-byte slots at offsets 0 and 512.
 *   slot:    0 u64 magic "CCATMETA"  8 u32 format version (1)  12 u32 cluster
 *            id length C (<= 400)  16 u64 sequence  24 u64 term  32 u64 vote
 *            40 u64 commit  48 C bytes cluster id  48+C u64 XXH3 of bytes
 *            0..47+C; the rest of the slot is zero.
 *   A write that changes term, vote or cluster id goes to the slot NOT holding
 *   the newest synced copy and is fdatasync'ed; a commit-only change is
 *   written, unsynced, to that same non-synced slot. The synced copy is thus
 *   never overwritten without sync, and every copy that can survive a crash
 *   has the newest durable term and vote. The file is created as a .tmp with
 *   both slots valid, synced, renamed, directory synced.
 *
 * SNAPSHOT FILE = header, then the state machine data.
 *   header:  0 u64 magic "CCATSNAP"  8 u32 format version (1)  12 u32 header
 *            size H  16 u64 index  24 u64 term  32 u64 data size S  40 u64
 *            XXH3 of the S data bytes  48 u32 voter count V  52 u32 learner
 *            count N  56 (V + N) u64 node ids  H - 8 u64 XXH3 of bytes 0..H-9.
 *   The file is exactly H + S bytes. Written as a .tmp, fdatasync'ed, renamed,
 *   directory fsync'ed; a received snapshot is assembled in a .recv.tmp the
 *   same way and renamed only once its size (and checksum when known) match.
 *   Received chunks are not synced one by one: a crash loses the transfer,
 *   which the leader restarts from offset 0.
 *
 * RECOVERY (what open does):
 *   - *.tmp files anywhere: removed, with a warning.
 *   - Any segment whose bytes after the last valid frame are all zero:
 *     preallocated space, not damage. An older segment is trimmed to its
 *     last frame (a crash came between creating its successor and trimming
 *     it); the newest keeps the space.
 *   - Newest segment, an invalid frame (short header, length out of bounds,
 *     short body, checksum mismatch, unexpected index, decreasing term, bad
 *     type) with no valid frame anywhere after it: a torn tail. The file is
 *     truncated to the end of the last valid frame and synced; a warning names
 *     the file and offset. Nothing before it is lost.
 *   - Newest segment, an invalid frame followed by a valid frame (found by
 *     scanning the rest of the file), or any invalid frame in an older
 *     (closed) segment, or an invalid segment header, or a gap or overlap
 *     between segments: open fails with StorageError naming the file, offset
 *     and the index expected there. Nothing is truncated. (A disk that
 *     persists the sectors of one unsynced batch out of order can produce
 *     this too; refusing to start is the conservative answer.)
 *   - Meta: the valid slot with the highest sequence is used; one invalid
 *     slot gives a warning; both invalid (or a short file) fails open. A
 *     missing meta file is a fresh node only if the log and snapshots are
 *     empty too; otherwise open fails.
 *   - Snapshots: a file with a bad header, wrong size or data checksum is
 *     renamed to *.corrupt with a warning and the previous snapshot is used.
 *   - Storage: a log that does not reach the snapshot, or disagrees with its
 *     term, is reset to start after the snapshot (a crash between installing
 *     a received snapshot and resetting the log). A log starting after the
 *     snapshot's index + 1 (a gap) fails open.
 */

namespace copycat::storage::format {

inline constexpr std::uint32_t kVersion = 1;

inline constexpr std::uint64_t kSegmentMagic = 0x31474553'54414343ULL;   // "CCATSEG1"
inline constexpr std::uint64_t kMetaMagic = 0x4154454D'54414343ULL;      // "CCATMETA"
inline constexpr std::uint64_t kSnapshotMagic = 0x50414E53'54414343ULL;  // "CCATSNAP"

inline constexpr std::size_t kSegmentHeaderSize = 48;
inline constexpr std::size_t kFrameHeaderSize = 12;
inline constexpr std::size_t kEntryFixedBody = 26;
inline constexpr std::size_t kMaxPayload = 64u << 20;
inline constexpr std::size_t kMetaSlotSize = 512;
inline constexpr std::size_t kMaxClusterId = 400;
inline constexpr std::size_t kMaxSnapshotMembers = 100000;

inline void put64(char* out, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(value >> (8 * i));
}
inline void put32(char* out, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(value >> (8 * i));
}
inline std::uint64_t get64(const char* in) {
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= std::uint64_t(static_cast<unsigned char>(in[i])) << (8 * i);
  return value;
}
inline std::uint32_t get32(const char* in) {
  std::uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value |= std::uint32_t(static_cast<unsigned char>(in[i])) << (8 * i);
  return value;
}

std::uint64_t checksum(const void* data, std::size_t length, std::uint64_t seed = 0);

struct SegmentHeader {
  std::uint64_t id = 0;
  raft::Index firstIndex = 1;
  raft::Term prevTerm = 0;
};
void encodeSegmentHeader(const SegmentHeader& header, char out[kSegmentHeaderSize]);
/// nullopt when magic, version, size or checksum is wrong.
std::optional<SegmentHeader> decodeSegmentHeader(const char* in, std::size_t length);

inline std::size_t frameSize(const raft::Entry& entry) {
  return kFrameHeaderSize + kEntryFixedBody + entry.data.size();
}
/// Appends the frame of `entry` to `out`.
void encodeEntry(const raft::Entry& entry, std::string& out);

/// Result of looking at the bytes at one frame position.
struct FrameView {
  std::size_t size = 0;  // whole frame, header included
  raft::Term term = 0;
  raft::Index index = 0;
};
/// Validates the frame at the start of `in` (length bounds, checksum, type);
/// nullopt when it is not a complete valid frame.
std::optional<FrameView> checkFrame(const char* in, std::size_t length);
/// Decodes a frame already validated by checkFrame.
raft::Entry decodeEntry(const char* in);

struct MetaSlot {
  std::uint64_t sequence = 0;
  raft::Term term = 0;
  raft::NodeId vote = raft::kNoNode;
  raft::Index commit = 0;
  std::string clusterId;
};
void encodeMetaSlot(const MetaSlot& slot, char out[kMetaSlotSize]);
std::optional<MetaSlot> decodeMetaSlot(const char* in, std::size_t length);

struct SnapshotHeader {
  raft::SnapshotMeta meta;  // meta.size is the data size
  std::uint64_t dataChecksum = 0;
};
std::string encodeSnapshotHeader(const SnapshotHeader& header);
/// Header size H of the header at the start of `in` once at least 56 bytes
/// are available; nullopt when magic, version or size are impossible.
std::optional<std::size_t> snapshotHeaderSize(const char* in, std::size_t length);
std::optional<SnapshotHeader> decodeSnapshotHeader(const char* in, std::size_t length);

std::string segmentFileName(std::uint64_t id);
std::optional<std::uint64_t> parseSegmentFileName(std::string_view name);
std::string snapshotFileName(raft::Index index, raft::Term term);
bool isSnapshotFileName(std::string_view name);

}  // namespace copycat::storage::format
