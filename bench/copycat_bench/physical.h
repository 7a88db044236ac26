#pragma once

#include <QString>

namespace copycat::bench {

/// This machine's ceiling, measured the same way every run.
struct PhysicalFigures {
  double fdatasyncPerSec = 0;  // 4 KiB appends, one fdatasync each, in the data dir
  double fdatasyncP50Ms = 0;
  /// Three writers (one file each) start a 4 KiB append and fdatasync
  /// together: the median time until the second has finished, the disk's
  /// share of a 3-node commit.
  double quorumSyncP50Ms = 0;
  /// The same with two writers, until both finished: the disk's share of a
  /// 3-node commit when the leader defers its own sync and the two
  /// followers' copies commit.
  double pairSyncP50Ms = 0;
  /// Three writers append 4 KiB and fdatasync back to back, each on its own
  /// file: syncs per second of all three together. Every replica syncs every
  /// batch, so a 3-node cluster commits at most a third of this many batches.
  double concurrentSyncsPerSec = 0;
  double loopbackRttUs = 0;  // median round trip of 256 B on one TCP connection
  double loopbackRttP99Us = 0;
  double loopbackMBps = 0;  // one-way stream of 64 KiB writes
  double diskMBps = 0;      // sequential 1 MiB appends, one fdatasync each, in the data dir
  QString filesystem;       // of the data dir
};

/// Measures for about `seconds` in total (split over the figures).
/// Throws std::runtime_error on a system call failure.
PhysicalFigures measurePhysical(const QString& directory, double seconds);

}  // namespace copycat::bench
