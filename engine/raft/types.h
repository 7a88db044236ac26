#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace copycat::raft {

using NodeId = std::uint64_t;
using Term = std::uint64_t;
using Index = std::uint64_t;

/// Node id 0 is never a member: it means "nobody" (no vote, no known leader).
inline constexpr NodeId kNoNode = 0;

/// The role a node plays in the current term.
enum class Role : std::uint8_t { Follower, PreCandidate, Candidate, Leader };

std::string_view toString(Role role);

/// A single-server membership change, carried by a ConfigChange log entry.
/// It takes effect when the entry commits; only one may be pending at a time.
struct ConfigChange {
  enum class Kind : std::uint8_t {
    AddLearner,  // joins as a non-voting (passive) member and receives the log
    Promote,     // a caught-up learner becomes a voter
    AddVoter,    // joins directly as a voter (used when bootstrapping)
    Demote,      // a voter becomes a learner
    Remove,      // leaves the cluster entirely
  };
  Kind kind = Kind::AddLearner;
  NodeId node = kNoNode;

  friend bool operator==(const ConfigChange&, const ConfigChange&) = default;
};

std::string_view toString(ConfigChange::Kind kind);

/// The cluster membership: voters decide elections and commits, learners only
/// replicate. Both lists are kept sorted and disjoint.
struct Membership {
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;

  bool isVoter(NodeId id) const;
  bool isLearner(NodeId id) const;
  bool contains(NodeId id) const { return isVoter(id) || isLearner(id); }
  /// Returns the membership after `change`, or nullopt when the change makes
  /// no sense for this membership (adding an existing member, promoting a
  /// voter, removing the last voter...).
  std::optional<Membership> apply(const ConfigChange& change) const;

  friend bool operator==(const Membership&, const Membership&) = default;
};

enum class EntryType : std::uint8_t {
  Normal,        // user data, opaque to the core
  Noop,          // appended by every new leader to commit its term
  ConfigChange,  // membership change, see Entry::change
};

/// One log entry. `data` is opaque to the core; `change` is meaningful only
/// for ConfigChange entries. Storage layers own the byte encoding.
struct Entry {
  Term term = 0;
  Index index = 0;
  EntryType type = EntryType::Normal;
  ConfigChange change;
  std::string data;

  /// Approximate size in bytes, used for batching limits.
  std::size_t byteSize() const { return data.size() + 24; }
  friend bool operator==(const Entry&, const Entry&) = default;
};

/// What must survive a crash besides the log: current term, the vote cast in
/// it, and the commit index (an optimisation; it may lag).
struct HardState {
  Term term = 0;
  NodeId vote = kNoNode;
  Index commit = 0;

  bool isEmpty() const { return term == 0 && vote == kNoNode && commit == 0; }
  friend bool operator==(const HardState&, const HardState&) = default;
};

/// Describes a state machine snapshot: the last log index and term it covers,
/// the membership at that index, the size of its data in bytes and, when the
/// storage computed one, a checksum of the data (0: none) that the receiver
/// verifies before installing it.
struct SnapshotMeta {
  Index index = 0;
  Term term = 0;
  Membership membership;
  std::uint64_t size = 0;
  std::uint64_t checksum = 0;

  bool isEmpty() const { return index == 0; }
  friend bool operator==(const SnapshotMeta&, const SnapshotMeta&) = default;
};

enum class MessageType : std::uint8_t {
  PreVote,
  PreVoteResponse,
  Vote,
  VoteResponse,
  Append,
  AppendResponse,
  Heartbeat,
  HeartbeatResponse,
  InstallSnapshot,
  InstallSnapshotResponse,
  TimeoutNow,
};

std::string_view toString(MessageType type);

/// A message between two cores. Fields are interpreted per type:
/// - PreVote/Vote: `index`/`logTerm` are the candidate's last log position;
///   `context` is 1 when the election comes from a leadership transfer.
///   A PreVote carries the term the candidate would campaign in.
/// - Append: `index`/`logTerm` name the entry preceding `entries`; `commit`
///   is the leader's commit index. `context` is 1 on an Append without
///   entries that only tells a follower in steady replication a new commit
///   index: the follower answers it only to reject. Its acknowledgements of
///   the entries themselves are on their way; one that is lost is repaired
///   by the next heartbeat round, whose answer makes the leader send an
///   Append that is answered.
/// - AppendResponse: on success `index` is the last index now known to match;
///   on reject `index` is the rejected probe, `hintIndex`/`hintTerm` say where
///   the follower's log could match (fast backtracking).
/// - Heartbeat/HeartbeatResponse: `commit`, and `context` the read round the
///   heartbeat confirms (ReadIndex and lease).
/// - InstallSnapshot: `snapshot` meta, `offset` of `data` in the snapshot,
///   `done` on the last chunk. Response: `offset` is the next byte the
///   follower expects, `done` once it installed the snapshot, `reject` when
///   it wants a restart at `offset`.
struct Message {
  MessageType type = MessageType::Append;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  Term term = 0;
  Term logTerm = 0;
  Index index = 0;
  std::vector<Entry> entries;
  Index commit = 0;
  bool reject = false;
  Index hintIndex = 0;
  Term hintTerm = 0;
  std::uint64_t context = 0;
  SnapshotMeta snapshot;
  std::uint64_t offset = 0;
  std::string data;
  bool done = false;

  std::size_t byteSize() const;
  std::string describe() const;
};

/// A linearizable read released by the core: every entry up to `index` has
/// been committed and is known to be current; serve request `requestId` once
/// the state machine has applied `index`.
struct ReadState {
  std::uint64_t requestId = 0;
  Index index = 0;
};

/// A piece of an incoming snapshot, handed to the runtime to store. The core
/// acknowledges it to the leader only after the Ready carrying it is
/// persisted.
struct SnapshotChunk {
  SnapshotMeta meta;
  std::uint64_t offset = 0;
  std::string data;
  bool last = false;
};

}  // namespace copycat::raft
