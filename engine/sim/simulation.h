#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "engine/raft/node.h"
#include "engine/storage/crashable_file_system.h"
#include "engine/storage/disk_storage.h"

namespace copycat::sim {

using raft::Index;
using raft::NodeId;
using raft::Term;
/// Virtual time in milliseconds since the start of a simulation.
using Millis = std::int64_t;

/// The faults a randomized run injects, as rates per virtual second or
/// probabilities per message. A default FaultMix injects nothing.
struct FaultMix {
  double dropRate = 0;       // probability a message is lost
  double duplicateRate = 0;  // probability a message is delivered twice
  Millis minDelay = 1;       // one-way network delay range; a wide range reorders
  Millis maxDelay = 3;
  double partitionsPerSecond = 0;  // random symmetric or one-way partitions
  double oneWayShare = 0.3;        // share of partitions that cut one direction only
  Millis partitionLength = 400;    // mean length of a partition
  double crashesPerSecond = 0;     // random crash, restart after crashDowntime
  Millis crashDowntime = 300;
  double slowDiskShare = 0;  // share of persists delayed by up to slowDiskMax
  Millis slowDiskMax = 0;
  double changesPerSecond = 0;  // membership churn: remove, re-add as learner, promote

  /// Named mixes used by sweeps: calm, lossy, reorder, partitions, crashes,
  /// slowdisk, membership, chaos. Returns nullopt for an unknown name.
  static std::optional<FaultMix> named(const std::string& name);
  static std::vector<std::string> names();
};

/// Everything that determines a run: the same SimConfig replays exactly.
struct SimConfig {
  std::uint64_t seed = 1;
  int nodes = 5;  // 1..9
  std::string mixName = "calm";
  FaultMix faults;
  Millis tickMillis = 10;
  int electionTicks = 10;
  int heartbeatTicks = 1;
  bool preVote = true;
  bool checkQuorum = true;
  /// A node snapshots its state machine every this many applied entries
  /// (0: never) and keeps `compactionMargin` entries behind the snapshot.
  Index snapshotEvery = 0;
  Index compactionMargin = 5;
  std::size_t snapshotChunkBytes = 64;
  /// Disk-backed mode: every node keeps its log, meta and snapshots in real
  /// files (engine/storage) behind a file layer that loses unsynced writes on
  /// a crash. The directory is created fresh and removed afterwards when
  /// `diskDirectory` is empty.
  bool diskBacked = false;
  std::string diskDirectory;
  /// Disk-backed mode: a leader leaves the sync of about half of its batches
  /// for later (0 to 5 ms) when its followers alone can commit them, as the
  /// server runtime does (ServerConfig::ownSyncDelayMs); a crash loses them.
  bool deferLeaderSyncs = true;
  /// Randomized runs (runScenario): how long faults are injected and how
  /// many client proposals per virtual second are attempted.
  Millis faultyPeriod = 3000;
  double proposalsPerSecond = 50;
  /// After faults heal, a leader must exist and a proposal commit within this.
  Millis livenessBound = 5000;

  /// The exact command line that replays this configuration.
  std::string replayCommand() const;
};

/// The value a simulated client wrote and where it ended up.
struct AppliedEntry {
  Index index = 0;
  Term term = 0;
  std::string data;
};

/// A read released by a node's core, with the virtual time of release.
struct ReleasedRead {
  std::uint64_t requestId = 0;
  Index index = 0;
  Millis at = 0;
  Term term = 0;
};

/// A deterministic cluster of Raft cores on a virtual network and virtual
/// disks. Every action is one step; after each step every invariant is
/// checked (election safety, log matching, leader completeness, state
/// machine safety, monotonic commit/apply, one vote per term across restarts).
/// The first violation is kept with the events that led to it, and time
/// stops there (runFor and runUntil return) so a test can inspect the state. Tests drive it step by
/// step or use runScenario for a seeded randomized run.
class Simulation {
 public:
  explicit Simulation(SimConfig config);
  ~Simulation();
  Simulation(const Simulation&) = delete;
  Simulation& operator=(const Simulation&) = delete;

  const SimConfig& config() const { return m_config; }
  Millis now() const { return m_now; }
  std::vector<NodeId> nodeIds() const;  // every node ever created, 1-based

  // ----- time -----
  /// Processes events until virtual time has advanced by `duration`.
  void runFor(Millis duration);
  /// Runs until `done()` holds (checked after every step) or `limit` passes.
  bool runUntil(const std::function<bool()>& done, Millis limit);
  /// Runs until some live node is leader and every live node knows it.
  std::optional<NodeId> waitForLeader(Millis limit = 5000);

  // ----- clients -----
  /// Proposes `data` at node `at` (returns the core's answer).
  raft::ProposeResult propose(NodeId at, const std::string& data);
  /// Proposes at the current leader and runs until a majority has applied it.
  /// Returns its index, or nullopt when no leader committed it within limit.
  std::optional<Index> commitValue(const std::string& data, Millis limit = 5000);
  raft::ProposeResult readIndex(NodeId at, std::uint64_t requestId,
                                raft::ReadMode mode = raft::ReadMode::ReadIndex);
  raft::ProposeResult proposeChange(NodeId at, const raft::ConfigChange& change);
  raft::ProposeResult transferLeadership(NodeId at, NodeId target);
  void campaign(NodeId id);

  // ----- faults -----
  /// Kills a node: its memory and any unpersisted Ready are lost.
  void crash(NodeId id);
  /// Starts a crashed node again from what its disk holds.
  void restart(NodeId id);
  /// Destroys a crashed node's disk, as if it were replaced: on restart it
  /// has forgotten its votes and log. Raft cannot survive this on a majority;
  /// tests use it to prove that the invariant checks catch real failures.
  void wipeDisk(NodeId id);
  /// Adds a brand-new empty node (it joins when a membership change names it).
  NodeId addNode();
  /// Cuts messages from `from` to `to` (one direction).
  void cut(NodeId from, NodeId to);
  /// Cuts both directions between `id` and every other node.
  void isolate(NodeId id);
  /// Splits the cluster: nodes in different groups cannot talk.
  void partition(const std::vector<std::vector<NodeId>>& groups);
  /// Restores every link, and sets drop/duplicate rates back to zero.
  void heal();
  void setDropRate(double rate);
  void setDuplicateRate(double rate);
  void setDelay(Millis minDelay, Millis maxDelay);
  /// Delays every persist of `id` by `delay` (0: a normal disk).
  void setDiskDelay(NodeId id, Millis delay);
  /// Drops every message for which `drop` returns true, on top of the other
  /// faults (a test's targeted fault); an empty function removes the filter.
  void setMessageFilter(std::function<bool(const raft::Message&)> drop);

  // ----- observation -----
  bool isUp(NodeId id) const;
  raft::Status status(NodeId id) const;
  /// The leader of the highest term among live nodes, if any.
  std::optional<NodeId> leader() const;
  /// Entries this node's state machine applied, in order, since its last
  /// restart from snapshot (plus the snapshot's content as `data` lines).
  std::vector<std::string> appliedValues(NodeId id) const;
  Index appliedIndex(NodeId id) const;
  const std::vector<ReleasedRead>& releasedReads(NodeId id) const;
  /// Persisted log of a node (for log matching checks in tests).
  std::vector<raft::Entry> persistedLog(NodeId id) const;
  raft::HardState persistedHardState(NodeId id) const;
  std::uint64_t snapshotsInstalled(NodeId id) const;
  std::uint64_t messagesDelivered() const { return m_messagesDelivered; }
  std::uint64_t stepsRun() const { return m_steps; }

  /// Receives, as they happen, every core event (with `event` set) and every
  /// fault or node start/crash (with `event` null). Message traffic is only in
  /// recentEvents().
  using Observer =
      std::function<void(Millis at, const std::string& line, const raft::CoreEvent* event)>;
  void setObserver(Observer observer) { m_observer = std::move(observer); }

  bool ok() const { return m_violation.empty(); }
  const std::string& violation() const { return m_violation; }
  /// The last events (node actions, message deliveries, faults), oldest first.
  std::vector<std::string> recentEvents() const;
  /// A failure report: the violation, the replay command and recent events.
  std::string report() const;

  /// A seeded randomized run: faults from config().faults while clients
  /// propose for config().faultyPeriod, then heal and check liveness.
  /// Returns true when no invariant failed and liveness held.
  bool runScenario();

 private:
  struct SimNode;
  struct Event;
  struct EventOrder {
    bool operator()(const Event& a, const Event& b) const;
  };

  void schedule(Millis at, std::function<void()> action, std::string label);
  void step();
  void processReady(SimNode& node);
  /// `deferSync`: a leader's batch is written but its sync left for later.
  void persistAndSend(SimNode& node, raft::Ready ready, bool deferSync = false);
  /// Makes what a leader wrote without syncing durable.
  void syncDeferred(SimNode& node);
  void crashAndRestartLater(NodeId victim);
  /// Applies a batch's committed entries and records its released reads.
  void handOut(SimNode& node, const raft::Ready& ready);
  void deliver(const raft::Message& message);
  /// A message's time on the network: uniform in [m_minDelay, m_maxDelay].
  Millis networkDelay();
  /// After a network delay, `at`'s transport reports its connection to
  /// `peer` closed (Node::reportDisconnected).
  void reportDisconnectedLater(NodeId at, NodeId peer);
  void send(const raft::Message& message);
  void applyEntries(SimNode& node, const std::vector<raft::Entry>& entries);
  void maybeSnapshot(SimNode& node);
  void startNode(SimNode& node);
  void openDisk(SimNode& node);
  void scheduleTick(NodeId id, std::uint64_t incarnation);
  bool linkUp(NodeId from, NodeId to) const;
  void record(std::string line, bool notify = true);
  void fail(const std::string& what);
  void checkInvariants(SimNode& node);
  void injectRandomFaults();
  void churnMembership();

  SimNode& nodeRef(NodeId id);
  const SimNode& nodeRef(NodeId id) const;

  SimConfig m_config;
  std::string m_directory;
  bool m_ownsDirectory = false;
  std::mt19937_64 m_rng;
  Millis m_now = 0;
  std::uint64_t m_sequence = 0;
  std::uint64_t m_steps = 0;
  std::uint64_t m_messagesDelivered = 0;
  std::vector<std::unique_ptr<SimNode>> m_nodes;
  std::unique_ptr<std::priority_queue<Event, std::vector<Event>, EventOrder>> m_queue;
  std::map<std::pair<NodeId, NodeId>, int> m_cutLinks;  // link -> partitions cutting it
  std::function<bool(const raft::Message&)> m_filter;
  Observer m_observer;
  NodeId m_churnTarget = 0;
  int m_churnPhase = 0;
  bool m_faultsActive = false;  // runScenario()'s faulty period
  bool m_traceMessages = true;
  double m_dropRate = 0;
  double m_duplicateRate = 0;
  Millis m_minDelay = 1;
  Millis m_maxDelay = 3;

  // Global knowledge for invariant checks.
  std::map<Term, NodeId> m_leaderOfTerm;
  // (index, term) -> (entry hash, term of the entry before it): log matching.
  std::map<std::pair<Index, Term>, std::pair<std::uint64_t, Term>> m_entryByPosition;
  // index -> digest of the state machine after applying it: state machine safety.
  std::map<Index, std::uint64_t> m_digestAt;
  // index -> (term, step at which it was first applied): leader completeness.
  std::map<Index, std::pair<Term, std::uint64_t>> m_committedTerm;
  std::map<Index, std::string> m_committedData;
  std::map<std::pair<NodeId, Term>, NodeId> m_votes;
  // (node, read request) -> highest index applied anywhere when it began.
  std::map<std::pair<NodeId, std::uint64_t>, Index> m_readFloor;
  Index m_highestCommitSeen = 0;
  std::deque<std::string> m_trace;
  std::string m_violation;
};

/// Outcome of one seed of a sweep.
struct SeedResult {
  std::uint64_t seed = 0;
  bool ok = true;
  std::string report;
  std::uint64_t steps = 0;
};

/// The configuration a sweep uses for `seed`: the mix (cycling through
/// FaultMix::names() unless `mixName` is given), cluster size and snapshot
/// frequency all derive from the seed, so a seed alone replays a run.
SimConfig sweepConfig(std::uint64_t seed, const SimConfig& base, const std::string& mixName = {});

/// Runs seeds [first, last] with the mix chosen by seed (cycling through
/// FaultMix::names() unless `mixName` is given) and returns the failures.
std::vector<SeedResult> sweep(std::uint64_t first, std::uint64_t last, const SimConfig& base,
                              const std::string& mixName = {});

}  // namespace copycat::sim
