#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/raft/storage.h"
#include "engine/raft/types.h"

namespace copycat::raft {

/// Tunables of one core. Times are in ticks of the runtime's logical clock.
struct Config {
  NodeId id = kNoNode;
  /// Base election timeout T; each election waits a random time in [T, 2T).
  int electionTicks = 10;
  int heartbeatTicks = 1;
  /// Seed of the core's private RNG (randomized election timeouts).
  std::uint64_t seed = 1;
  bool preVote = true;
  bool checkQuorum = true;
  /// A leader serves lease reads until electionTicks - leaseDriftTicks after
  /// the start of the last heartbeat round a majority acknowledged.
  int leaseDriftTicks = 2;
  std::size_t maxEntriesPerMessage = 256;
  std::size_t maxBytesPerMessage = 1 << 20;
  /// Append messages in flight per follower.
  std::size_t maxInflightMessages = 64;
  std::size_t snapshotChunkBytes = 1 << 20;
  /// Snapshot chunks in flight per follower. A few suffice to keep the link
  /// busy; the transport drops what does not fit in its send buffer (32 MiB),
  /// and every chunk after a dropped one comes back rejected.
  std::size_t maxSnapshotChunksInFlight = 4;
  /// The runtime decides when to promote a learner; Status reports a learner
  /// as caught up when its match index is within this many entries of the
  /// leader's last index.
  Index learnerCatchUpEntries = 16;
  /// Applied index to restart from (entries up to it are already in the
  /// state machine, for example restored from a snapshot). 0: snapshot index.
  Index applied = 0;
};

/// A typed record of something the core did, for tracing, the simulator's
/// failure reports and the Lab's views. Never needed for correctness.
struct CoreEvent {
  enum class Kind : std::uint8_t {
    RoleChanged,        // role, term, leader
    TermChanged,        // term
    VoteCast,           // peer = candidate, term
    CommitAdvanced,     // index
    MessageRejected,    // peer, text says why
    MessageIgnored,     // stale term or unknown sender
    MembershipChanged,  // index, text describes the change
    SnapshotSending,    // peer, index
    SnapshotInstalled,  // index, term
    LogCompacted,       // index
    LeaderTransfer,     // peer = transferee
    ReadReleased,       // index
  };
  Kind kind = Kind::RoleChanged;
  NodeId node = kNoNode;
  Term term = 0;
  Role role = Role::Follower;
  NodeId peer = kNoNode;
  Index index = 0;
  std::string text;

  std::string describe() const;
};

using EventSink = std::function<void(const CoreEvent&)>;

/// Replication state of one peer, as the leader sees it.
struct PeerProgress {
  enum class State : std::uint8_t { Probe, Replicate, Snapshot };
  NodeId id = kNoNode;
  Index match = 0;
  Index next = 1;
  State state = State::Probe;
  bool voter = true;
  bool recentlyActive = false;
  bool caughtUp = false;
  std::size_t inflight = 0;
  /// State::Snapshot: the index of the snapshot being sent (0 otherwise).
  Index pendingSnapshot = 0;
};

/// A point-in-time summary of one core, for status output and the GUI.
struct Status {
  NodeId id = kNoNode;
  Role role = Role::Follower;
  Term term = 0;
  NodeId vote = kNoNode;
  NodeId leader = kNoNode;
  Index commit = 0;
  Index applied = 0;  // handed to the runtime to apply (Ready::committed)
  /// The last log index known durable here; a leader that defers its own
  /// sync has written entries after it (up to lastIndex) that a crash loses.
  Index durable = 0;
  Index firstIndex = 0;
  Index lastIndex = 0;
  Index snapshotIndex = 0;
  Membership membership;
  NodeId transferee = kNoNode;
  std::vector<PeerProgress> progress;  // leader only
};

/// The output of the core, numbered. PERSIST BEFORE SEND: the runtime must
/// durably write `hardState`, `entries` (replacing any conflicting suffix)
/// and an installed `snapshot` with its `snapshotChunks` before it sends any
/// of `messages`, unless `sendBeforePersist` allows sending them first. It
/// may apply `committed` at once, serve `reads` once the state machine has
/// applied their index, and calls Node::advance with this batch once it is
/// written.
struct Ready {
  std::uint64_t number = 0;
  std::optional<HardState> hardState;
  std::vector<Entry> entries;
  /// Pieces of a snapshot arriving from the leader, to store in order.
  std::vector<SnapshotChunk> snapshotChunks;
  /// Set when the last chunk arrived: the assembled snapshot replaces the
  /// state machine and every log entry up to meta.index.
  std::optional<SnapshotMeta> snapshot;
  std::vector<Message> messages;
  /// Committed entries that earlier batches wrote here (durably, or, on a
  /// leader that deferred its sync, durable on a majority without it): they
  /// may be applied at once, before this batch is written.
  std::vector<Entry> committed;
  std::vector<ReadState> reads;
  /// Set when role or leader changed since the previous batch.
  std::optional<Role> role;
  NodeId leader = kNoNode;
  /// Set when `messages` may leave before (or while) this batch is written:
  /// they are a leader's, in a term whose term and vote are already durable.
  /// The leader replicates its new entries in parallel with its own write and
  /// counts itself toward their commitment only after advance() (thesis
  /// §10.2.1), so a crash that loses them cannot undo a commit.
  bool sendBeforePersist = false;

  bool empty() const;
};

enum class ProposeResult : std::uint8_t {
  Accepted,
  NotLeader,
  TransferInProgress,  // the leader is handing over leadership
  ChangeInProgress,    // another membership change has not committed yet
  InvalidChange,       // the change makes no sense for the membership
};

std::string_view toString(ProposeResult result);

/// How a read is confirmed: by a heartbeat round to a majority, or by the
/// leader's lease when it is still valid (falls back to a round otherwise).
enum class ReadMode : std::uint8_t { ReadIndex, Lease };

class RaftCore;

/// The Raft consensus core: a deterministic state machine with no thread,
/// clock, socket or file. The runtime feeds it ticks, messages and proposals,
/// and drains Ready batches (see Ready for the persistence contract). All
/// calls are made from one thread. The same inputs in the same order always
/// produce the same outputs.
class Node {
 public:
  /// Starts from what `storage` holds (an empty storage plus
  /// `initialMembership` bootstraps a new cluster; a node joining an existing
  /// cluster starts with an empty membership and learns it from the leader).
  Node(const Config& config, const LogStorage& storage, Membership initialMembership = {});
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  void setEventSink(EventSink sink);

  void tick();
  void step(const Message& message);
  ProposeResult propose(std::string data);
  /// `data` travels in the entry, opaque to the core (a server puts the
  /// member's address there).
  ProposeResult proposeChange(const ConfigChange& change, std::string data = {});
  /// Asks for a linearizable read; released through Ready::reads.
  ProposeResult readIndex(std::uint64_t requestId, ReadMode mode = ReadMode::ReadIndex);
  /// Hands leadership to `target` once it has caught up (TimeoutNow).
  ProposeResult transferLeadership(NodeId target);
  /// Starts an election now (for a voter that is not leader).
  void campaign();
  /// The runtime took a snapshot of its state machine at `index` and compacted
  /// storage accordingly.
  void snapshotTaken(Index index);
  /// The transport could not reach `peer`; replication to it restarts with a
  /// probe.
  void reportUnreachable(NodeId peer);
  /// The transport's open connection to `peer` closed (its process exited,
  /// or its host reset the connection). A follower whose leader that is
  /// campaigns as soon as the leader's lease is over (electionTicks + 1 ticks
  /// after its last message) instead of a randomized 1-2 election timeouts,
  /// the voters in id order 2 ticks apart, so that two followers of a dead
  /// leader do not split the vote. It still refuses votes until then, as a
  /// leader whose connection closed may be alive and serving lease reads. On
  /// a leader it acts as reportUnreachable.
  void reportDisconnected(NodeId peer);

  /// The membership in force at `index` (index >= first log index - 1).
  Membership membershipAt(Index index) const;

  bool hasReady() const;
  Ready ready();
  /// While a ready() batch is being written (before its advance()), a leader
  /// whose term is durable may hand out what needs no write: replication of
  /// entries proposed meanwhile (written by the next batch), newly committed
  /// entries and released reads. Such a batch has no entries, hard state,
  /// snapshot or role; the runtime sends, applies and advances it at once.
  bool hasReadyWhileWriting() const;
  Ready readyWhileWriting();
  /// The batch is written and durable; when it has entries, so is every
  /// entry written before them.
  void advance(const Ready& ready);
  /// A leader's batch (sendBeforePersist) is written but not yet durable: the
  /// next batch may follow, and committed entries that the followers made
  /// durable may be applied, but the leader counts itself toward the
  /// commitment of these entries only after markDurable. Before the runtime
  /// sends the messages of a batch that is not sendBeforePersist, it makes
  /// every written batch durable (and may report it with markDurable).
  void advanceWritten(const Ready& ready);
  /// Everything this node wrote up to `index` is durable now.
  void markDurable(Index index);
  /// Whether a leader needs its own durable copy of what it writes now for a
  /// commit: fewer followers than a majority are being replicated to. When it
  /// does not, the runtime may defer its own sync (for a while) and let the
  /// followers' copies commit the entries. Always true on a non-leader.
  bool ownSyncNeeded() const;

  Status status() const;
  NodeId id() const;
  Role role() const;
  Term term() const;
  NodeId leader() const;
  /// The last index in the log (cheaper than status()).
  Index lastIndex() const;

 private:
  std::unique_ptr<RaftCore> m_core;
};

}  // namespace copycat::raft
