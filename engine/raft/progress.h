#pragma once

#include <cstddef>
#include <deque>

#include "engine/raft/node.h"

namespace copycat::raft {

/// The leader's bookkeeping for one follower: how far its log matches, what
/// to send next, and the flow-control window. Internal to the core.
struct Progress {
  using State = PeerProgress::State;

  Index match = 0;
  Index next = 1;
  State state = State::Probe;
  /// In Probe: one append is outstanding; wait for an answer or a heartbeat.
  bool probeSent = false;
  bool recentActive = false;
  /// Last index of each Append in flight (Replicate), oldest first.
  std::deque<Index> inflight;

  // Snapshot transfer (state Snapshot).
  Index pendingSnapshot = 0;
  std::uint64_t snapshotSendOffset = 0;
  std::uint64_t snapshotAckedOffset = 0;
  std::size_t snapshotChunksInFlight = 0;
  bool snapshotLastSent = false;
  int snapshotIdleTicks = 0;

  /// Read rounds: the newest heartbeat round this peer acknowledged.
  std::uint64_t ackedRound = 0;

  void becomeProbe();
  void becomeReplicate();
  void becomeSnapshot(Index snapshotIndex);
  /// A successful AppendResponse for `index`; true when match advanced.
  bool maybeUpdate(Index index);
  /// A rejected AppendResponse for probe `rejected` with follower hint
  /// `matchHint`; false when the rejection is stale.
  bool maybeDecreaseTo(Index rejected, Index matchHint);
  bool isPaused(std::size_t maxInflight) const;
  void freeInflightTo(Index index);
};

}  // namespace copycat::raft
