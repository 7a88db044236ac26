#include "engine/raft/progress.h"

#include <algorithm>

namespace copycat::raft {

void Progress::becomeProbe() {
  if (state == State::Snapshot) {
    next = std::max(match + 1, pendingSnapshot + 1);
  } else {
    next = match + 1;
  }
  state = State::Probe;
  probeSent = false;
  inflight.clear();
  pendingSnapshot = 0;
}

void Progress::becomeReplicate() {
  state = State::Replicate;
  next = match + 1;
  probeSent = false;
  inflight.clear();
}

void Progress::becomeSnapshot(Index snapshotIndex) {
  state = State::Snapshot;
  pendingSnapshot = snapshotIndex;
  snapshotSendOffset = 0;
  snapshotAckedOffset = 0;
  snapshotChunksInFlight = 0;
  snapshotLastSent = false;
  snapshotIdleTicks = 0;
  probeSent = false;
  inflight.clear();
}

bool Progress::maybeUpdate(Index index) {
  bool advanced = false;
  if (match < index) {
    match = index;
    advanced = true;
    probeSent = false;
  }
  next = std::max(next, index + 1);
  return advanced;
}

bool Progress::maybeDecreaseTo(Index rejected, Index matchHint) {
  if (state == State::Replicate) {
    if (rejected <= match) return false;
    next = match + 1;
    return true;
  }
  if (next == 0 || next - 1 != rejected) return false;
  next = std::max<Index>(std::min(rejected, matchHint + 1), match + 1);
  probeSent = false;
  return true;
}

bool Progress::isPaused(std::size_t maxInflight) const {
  switch (state) {
    case State::Probe:
      return probeSent;
    case State::Replicate:
      return inflight.size() >= maxInflight;
    case State::Snapshot:
      return true;
  }
  return true;
}

void Progress::freeInflightTo(Index index) {
  while (!inflight.empty() && inflight.front() <= index) inflight.pop_front();
}

}  // namespace copycat::raft
