#include "engine/sim/simulation.h"

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include <stdlib.h>

namespace copycat::sim {

using raft::Entry;
using raft::EntryType;
using raft::Message;
using raft::ProposeResult;
using raft::Role;

namespace {

constexpr std::size_t kTraceLength = 2000;

std::uint64_t mix(std::uint64_t hash, std::uint64_t value) {
  hash ^= value + 0x9E3779B97F4A7C15ull + (hash << 6) + (hash >> 2);
  hash *= 0xFF51AFD7ED558CCDull;
  return hash ^ (hash >> 33);
}

std::uint64_t hashBytes(const std::string& bytes) {
  std::uint64_t hash = 0xCBF29CE484222325ull;
  for (unsigned char c : bytes) hash = (hash ^ c) * 0x100000001B3ull;
  return hash;
}

std::uint64_t entryHash(const Entry& entry) {
  std::uint64_t hash = mix(hashBytes(entry.data), static_cast<std::uint64_t>(entry.type));
  hash = mix(hash, static_cast<std::uint64_t>(entry.change.kind));
  return mix(hash, entry.change.node);
}

/// The simulated state machine's snapshot: its digest and its values.
std::string encodeState(std::uint64_t digest, const std::vector<std::string>& values) {
  std::string out = std::to_string(digest) + "\n";
  for (const std::string& value : values) out += std::to_string(value.size()) + ":" + value;
  return out;
}

bool decodeState(const std::string& data, std::uint64_t& digest, std::vector<std::string>& values) {
  const std::size_t newline = data.find('\n');
  if (newline == std::string::npos) return false;
  digest = std::stoull(data.substr(0, newline));
  values.clear();
  std::size_t position = newline + 1;
  while (position < data.size()) {
    const std::size_t colon = data.find(':', position);
    if (colon == std::string::npos) return false;
    const std::size_t length = std::stoull(data.substr(position, colon - position));
    if (colon + 1 + length > data.size()) return false;
    values.push_back(data.substr(colon + 1, length));
    position = colon + 1 + length;
  }
  return true;
}

}  // namespace

// ----- configuration -----

std::optional<FaultMix> FaultMix::named(const std::string& name) {
  FaultMix mixture;
  if (name == "calm") return mixture;
  if (name == "lossy") {
    mixture.dropRate = 0.1;
    mixture.duplicateRate = 0.05;
    mixture.maxDelay = 10;
    return mixture;
  }
  if (name == "reorder") {
    mixture.maxDelay = 40;
    mixture.duplicateRate = 0.05;
    return mixture;
  }
  if (name == "partitions") {
    mixture.partitionsPerSecond = 1.5;
    mixture.partitionLength = 500;
    mixture.maxDelay = 5;
    return mixture;
  }
  if (name == "crashes") {
    mixture.crashesPerSecond = 1.0;
    mixture.crashDowntime = 300;
    return mixture;
  }
  if (name == "slowdisk") {
    mixture.slowDiskShare = 0.3;
    mixture.slowDiskMax = 40;
    mixture.maxDelay = 5;
    return mixture;
  }
  if (name == "membership") {
    mixture.maxDelay = 5;
    mixture.dropRate = 0.02;
    mixture.changesPerSecond = 4;
    return mixture;
  }
  if (name == "chaos") {
    mixture.changesPerSecond = 1;
    mixture.dropRate = 0.05;
    mixture.duplicateRate = 0.02;
    mixture.maxDelay = 20;
    mixture.partitionsPerSecond = 1.0;
    mixture.crashesPerSecond = 0.6;
    mixture.slowDiskShare = 0.2;
    mixture.slowDiskMax = 30;
    return mixture;
  }
  return std::nullopt;
}

std::vector<std::string> FaultMix::names() {
  return {"calm", "lossy", "reorder", "partitions", "crashes", "slowdisk", "membership", "chaos"};
}

std::string SimConfig::replayCommand() const {
  std::string command = "copycat-sim --seed " + std::to_string(seed) + " --nodes " +
                        std::to_string(nodes) + " --mix " + mixName + " --snapshot-every " +
                        std::to_string(snapshotEvery) + " --faulty-ms " +
                        std::to_string(faultyPeriod) + " --proposals-per-second " +
                        std::to_string(static_cast<long long>(proposalsPerSecond));
  if (!preVote) command += " --no-pre-vote";
  if (!checkQuorum) command += " --no-check-quorum";
  if (diskBacked) command += " --disk";
  return command + " --trace";
}

// ----- nodes and events -----

struct Simulation::SimNode {
  NodeId id = 0;
  bool founding = false;
  bool up = false;
  std::uint64_t incarnation = 0;
  std::string directory;                             // disk-backed mode
  std::unique_ptr<storage::CrashableFileSystem> fs;  // disk-backed mode
  std::unique_ptr<storage::PersistentStorage> disk;  // what survives a crash
  std::unique_ptr<raft::Node> core;
  bool persisting = false;  // a Ready is waiting on a slow disk
  // A leader's written batches whose sync was left for later: the newest
  // storage job covers them all, up to deferredThrough.
  std::function<void()> deferredSync;
  Index deferredThrough = 0;
  Term deferredTerm = 0;
  // The last log index a sync covered.
  Index durableLast = 0;
  // The term and voters under which checkInvariants follows the commits.
  Term commitCheckedTerm = 0;
  std::vector<NodeId> commitCheckedVoters;
  // The incarnation that ended in a power cut, the last one that did.
  std::uint64_t powerCutIncarnation = 0;
  Millis diskDelay = 0;
  // The state machine: values applied in order and a digest of every entry.
  std::vector<std::string> values;
  Index applied = 0;
  std::uint64_t digest = 0;
  // Invariant bookkeeping.
  Index lastCommit = 0;
  Term completenessCheckedTerm = 0;
  std::uint64_t electedAtStep = 0;
  std::vector<ReleasedRead> reads;
  std::uint64_t snapshotsInstalled = 0;
};

struct Simulation::Event {
  Millis at = 0;
  std::uint64_t sequence = 0;
  std::function<void()> action;
};

bool Simulation::EventOrder::operator()(const Event& a, const Event& b) const {
  return a.at != b.at ? a.at > b.at : a.sequence > b.sequence;
}

Simulation::Simulation(SimConfig config)
    : m_config(std::move(config)),
      m_rng(m_config.seed),
      m_queue(std::make_unique<std::priority_queue<Event, std::vector<Event>, EventOrder>>()) {
  if (m_config.nodes < 1 || m_config.nodes > 9) {
    throw std::invalid_argument("Simulation: nodes must be between 1 and 9");
  }
  if (m_config.diskBacked) {
    if (m_config.diskDirectory.empty()) {
      // Fresh files per run, on tmpfs when there is one: the crashes are
      // simulated by the file layer, the bytes and the recovery are real.
      std::string base = std::filesystem::is_directory("/dev/shm")
                             ? std::string("/dev/shm")
                             : std::filesystem::temp_directory_path().string();
      std::string pattern = base + "/copycat-sim-XXXXXX";
      if (mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("Simulation: cannot create a directory under " + base);
      }
      m_directory = pattern;
      m_ownsDirectory = true;
    } else {
      m_directory = m_config.diskDirectory;
      std::filesystem::create_directories(m_directory);
    }
  }
  m_minDelay = m_config.faults.minDelay;
  m_maxDelay = std::max(m_config.faults.maxDelay, m_config.faults.minDelay);
  for (int i = 1; i <= m_config.nodes; ++i) {
    auto node = std::make_unique<SimNode>();
    node->id = static_cast<NodeId>(i);
    node->founding = true;
    m_nodes.push_back(std::move(node));
  }
  for (auto& node : m_nodes) startNode(*node);
}

Simulation::~Simulation() {
  m_nodes.clear();
  if (m_ownsDirectory) {
    std::error_code ignored;
    std::filesystem::remove_all(m_directory, ignored);
  }
}

std::vector<NodeId> Simulation::nodeIds() const {
  std::vector<NodeId> ids;
  for (const auto& node : m_nodes) ids.push_back(node->id);
  return ids;
}

Simulation::SimNode& Simulation::nodeRef(NodeId id) {
  if (id == 0 || id > m_nodes.size()) {
    throw std::out_of_range("Simulation: no node " + std::to_string(id));
  }
  return *m_nodes[id - 1];
}

const Simulation::SimNode& Simulation::nodeRef(NodeId id) const {
  return const_cast<Simulation*>(this)->nodeRef(id);
}

void Simulation::schedule(Millis at, std::function<void()> action, std::string) {
  m_queue->push(Event{at, m_sequence++, std::move(action)});
}

void Simulation::startNode(SimNode& node) {
  node.up = true;
  ++node.incarnation;
  node.persisting = false;
  node.lastCommit = 0;
  if (!node.disk) openDisk(node);
  node.completenessCheckedTerm = 0;
  // The state machine restarts from the snapshot on disk, if any.
  node.values.clear();
  node.digest = 0;
  node.applied = node.disk->snapshotMeta().index;
  if (!node.disk->snapshotMeta().isEmpty()) {
    decodeState(node.disk->snapshotData(), node.digest, node.values);
  }
  raft::Config config;
  config.id = node.id;
  config.electionTicks = m_config.electionTicks;
  config.heartbeatTicks = m_config.heartbeatTicks;
  config.seed = mix(mix(m_config.seed, node.id), node.incarnation);
  config.preVote = m_config.preVote;
  config.checkQuorum = m_config.checkQuorum;
  config.maxEntriesPerMessage = 16;
  config.maxInflightMessages = 8;
  config.snapshotChunkBytes = m_config.snapshotChunkBytes;
  raft::Membership initial;
  if (node.founding) {
    for (int i = 1; i <= m_config.nodes; ++i) initial.voters.push_back(static_cast<NodeId>(i));
  }
  node.core = std::make_unique<raft::Node>(config, *node.disk, initial);
  node.core->setEventSink([this](const raft::CoreEvent& event) {
    if (m_observer) m_observer(m_now, event.describe(), &event);
    if (event.kind == raft::CoreEvent::Kind::RoleChanged ||
        event.kind == raft::CoreEvent::Kind::VoteCast ||
        event.kind == raft::CoreEvent::Kind::MembershipChanged ||
        event.kind == raft::CoreEvent::Kind::SnapshotInstalled ||
        event.kind == raft::CoreEvent::Kind::SnapshotSending ||
        event.kind == raft::CoreEvent::Kind::LeaderTransfer ||
        event.kind == raft::CoreEvent::Kind::MessageRejected) {
      record(event.describe(), false);
    }
  });
  record("n" + std::to_string(node.id) + " started (incarnation " +
         std::to_string(node.incarnation) + ")");
  const Millis phase =
      static_cast<Millis>(m_rng() % static_cast<std::uint64_t>(m_config.tickMillis));
  const std::uint64_t incarnation = node.incarnation;
  const NodeId id = node.id;
  schedule(
      m_now + phase + 1, [this, id, incarnation] { scheduleTick(id, incarnation); }, "tick");
  processReady(node);
}

void Simulation::openDisk(SimNode& node) {
  if (!m_config.diskBacked) {
    node.disk = std::make_unique<storage::MemoryLevelStorage>();
    node.durableLast = node.disk->lastIndex();
    return;
  }
  if (!node.fs) {
    node.fs = std::make_unique<storage::CrashableFileSystem>();
    node.directory = m_directory + "/n" + std::to_string(node.id);
  }
  storage::StorageOptions options;
  options.directory = node.directory;
  options.fileSystem = node.fs.get();
  options.log.maxSegmentEntries = 64;  // many segments: compaction really deletes files
  options.warn = [this, id = node.id](const std::string& warning) {
    record("n" + std::to_string(id) + " storage: " + warning);
  };
  node.disk = std::make_unique<storage::DiskStorage>(options);
  node.durableLast = node.disk->lastIndex();
}

void Simulation::scheduleTick(NodeId id, std::uint64_t incarnation) {
  SimNode& node = nodeRef(id);
  if (!node.up || node.incarnation != incarnation) return;
  node.core->tick();
  processReady(node);
  schedule(
      m_now + m_config.tickMillis, [this, id, incarnation] { scheduleTick(id, incarnation); },
      "tick");
}

// ----- running -----

void Simulation::step() {
  Event event = m_queue->top();
  m_queue->pop();
  m_now = std::max(m_now, event.at);
  ++m_steps;
  try {
    event.action();
  } catch (const std::exception& error) {
    // The core refuses to continue when its own checks fail: a violation.
    fail(std::string("exception: ") + error.what());
  }
}

void Simulation::runFor(Millis duration) {
  const Millis end = m_now + duration;
  while (ok() && !m_queue->empty() && m_queue->top().at <= end) step();
  m_now = end;
}

bool Simulation::runUntil(const std::function<bool()>& done, Millis limit) {
  const Millis end = m_now + limit;
  while (true) {
    if (done()) return true;
    if (!ok() || m_queue->empty() || m_queue->top().at > end) {
      m_now = end;
      return done();
    }
    step();
  }
}

std::optional<NodeId> Simulation::waitForLeader(Millis limit) {
  const bool found = runUntil(
      [this] {
        const std::optional<NodeId> current = leader();
        if (!current) return false;
        const SimNode& leaderNode = nodeRef(*current);
        for (const auto& node : m_nodes) {
          if (!node->up || !leaderNode.core->status().membership.contains(node->id)) continue;
          if (!linkUp(*current, node->id) || !linkUp(node->id, *current)) continue;
          if (node->core->leader() != *current) return false;
        }
        return true;
      },
      limit);
  return found ? leader() : std::nullopt;
}

// ----- clients -----

ProposeResult Simulation::propose(NodeId at, const std::string& data) {
  SimNode& node = nodeRef(at);
  if (!node.up) return ProposeResult::NotLeader;
  const ProposeResult result = node.core->propose(data);
  processReady(node);
  return result;
}

std::optional<Index> Simulation::commitValue(const std::string& data, Millis limit) {
  const Millis end = m_now + limit;
  while (m_now < end) {
    const std::optional<NodeId> current = waitForLeader(end - m_now);
    if (!current) return std::nullopt;
    SimNode& node = nodeRef(*current);
    const Term term = node.core->term();
    if (node.core->propose(data) != ProposeResult::Accepted) {
      runFor(m_config.tickMillis);
      continue;
    }
    const Index index = node.core->status().lastIndex;
    processReady(node);
    Index outcome = 0;
    runUntil(
        [&] {
          auto committed = m_committedData.find(index);
          if (committed != m_committedData.end()) {
            outcome = committed->second == data ? index : 0;
            if (outcome == 0) return true;  // another entry won this index
            std::size_t holders = 0;
            std::size_t voters = 0;
            for (const auto& other : m_nodes) {
              if (!node.core->status().membership.isVoter(other->id)) continue;
              ++voters;
              if (other->up && other->applied >= index) ++holders;
            }
            return holders >= voters / 2 + 1;
          }
          return !node.up || node.core->term() != term || node.core->role() != Role::Leader;
        },
        end - m_now);
    if (outcome != 0) {
      auto committed = m_committedData.find(index);
      if (committed != m_committedData.end() && committed->second == data) return index;
    }
  }
  return std::nullopt;
}

ProposeResult Simulation::readIndex(NodeId at, std::uint64_t requestId, raft::ReadMode mode) {
  SimNode& node = nodeRef(at);
  if (!node.up) return ProposeResult::NotLeader;
  const ProposeResult result = node.core->readIndex(requestId, mode);
  if (result == ProposeResult::Accepted) {
    m_readFloor[{at, requestId}] = m_highestCommitSeen;
  }
  processReady(node);
  return result;
}

ProposeResult Simulation::proposeChange(NodeId at, const raft::ConfigChange& change) {
  SimNode& node = nodeRef(at);
  if (!node.up) return ProposeResult::NotLeader;
  const ProposeResult result = node.core->proposeChange(change);
  processReady(node);
  return result;
}

ProposeResult Simulation::transferLeadership(NodeId at, NodeId target) {
  SimNode& node = nodeRef(at);
  if (!node.up) return ProposeResult::NotLeader;
  const ProposeResult result = node.core->transferLeadership(target);
  processReady(node);
  return result;
}

void Simulation::campaign(NodeId id) {
  SimNode& node = nodeRef(id);
  if (!node.up) return;
  node.core->campaign();
  processReady(node);
}

// ----- faults -----

void Simulation::crash(NodeId id) {
  SimNode& node = nodeRef(id);
  if (!node.up) return;
  node.up = false;
  ++node.incarnation;
  node.core.reset();
  node.persisting = false;
  node.deferredSync = {};
  node.values.clear();
  if (m_config.diskBacked) {
    // Power cut: unsynced writes are lost or torn; the files are reopened and
    // recovered on restart.
    storage::CrashOptions options;
    options.undoUnsyncedNamespaceChanges = m_rng() % 2 == 0;
    options.tornWritesSeed = m_rng();
    node.disk.reset();
    node.fs->crash(options);
  }
  record("n" + std::to_string(id) + " CRASHED");
  // A process that dies has its connections closed by its host, and the
  // peers' transports notice; a power cut leaves them waiting for timeouts,
  // and what it sent last may never leave its host.
  if (m_rng() % 2 == 0) {
    for (const auto& other : m_nodes) {
      if (other->id != id && linkUp(id, other->id)) reportDisconnectedLater(other->id, id);
    }
  } else {
    node.powerCutIncarnation = node.incarnation - 1;
  }
}

void Simulation::restart(NodeId id) {
  SimNode& node = nodeRef(id);
  if (node.up) return;
  startNode(node);
}

void Simulation::wipeDisk(NodeId id) {
  SimNode& node = nodeRef(id);
  if (node.up) throw std::logic_error("Simulation::wipeDisk: crash the node first");
  node.disk.reset();
  if (m_config.diskBacked) {
    node.fs.reset();
    std::filesystem::remove_all(node.directory);
  }
  record("n" + std::to_string(id) + " disk wiped");
}

NodeId Simulation::addNode() {
  auto node = std::make_unique<SimNode>();
  node->id = m_nodes.size() + 1;
  m_nodes.push_back(std::move(node));
  startNode(*m_nodes.back());
  return m_nodes.back()->id;
}

void Simulation::cut(NodeId from, NodeId to) {
  ++m_cutLinks[{from, to}];
  record("cut n" + std::to_string(from) + "->n" + std::to_string(to));
  // Half of the cuts reset the connection (a firewall rejecting with a
  // reset): `to` sees it close while `from` lives on, maybe as a leader
  // holding a lease.
  if (m_rng() % 2 == 0) reportDisconnectedLater(to, from);
}

void Simulation::reportDisconnectedLater(NodeId at, NodeId peer) {
  schedule(
      m_now + networkDelay(),
      [this, at, peer] {
        SimNode& target = nodeRef(at);
        if (!target.up) return;
        target.core->reportDisconnected(peer);
        processReady(target);
      },
      "disconnected");
}

void Simulation::isolate(NodeId id) {
  for (const auto& node : m_nodes) {
    if (node->id == id) continue;
    cut(id, node->id);
    cut(node->id, id);
  }
}

void Simulation::partition(const std::vector<std::vector<NodeId>>& groups) {
  std::map<NodeId, std::size_t> groupOf;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (NodeId id : groups[g]) groupOf[id] = g;
  }
  for (const auto& a : m_nodes) {
    for (const auto& b : m_nodes) {
      if (a->id == b->id) continue;
      auto ga = groupOf.find(a->id);
      auto gb = groupOf.find(b->id);
      const std::size_t groupA = ga == groupOf.end() ? groups.size() + a->id : ga->second;
      const std::size_t groupB = gb == groupOf.end() ? groups.size() + b->id : gb->second;
      if (groupA != groupB) cut(a->id, b->id);
    }
  }
}

void Simulation::heal() {
  m_cutLinks.clear();
  m_dropRate = 0;
  m_duplicateRate = 0;
  record("network healed");
}

void Simulation::setDropRate(double rate) { m_dropRate = rate; }

void Simulation::setDuplicateRate(double rate) { m_duplicateRate = rate; }

void Simulation::setDelay(Millis minDelay, Millis maxDelay) {
  m_minDelay = std::max<Millis>(minDelay, 0);
  m_maxDelay = std::max(maxDelay, m_minDelay);
}

void Simulation::setDiskDelay(NodeId id, Millis delay) { nodeRef(id).diskDelay = delay; }

void Simulation::setMessageFilter(std::function<bool(const Message&)> drop) {
  m_filter = std::move(drop);
}

bool Simulation::linkUp(NodeId from, NodeId to) const {
  auto it = m_cutLinks.find({from, to});
  return it == m_cutLinks.end() || it->second == 0;
}

// ----- the runtime of each node -----

void Simulation::processReady(SimNode& node) {
  // While a batch is written, a leader hands out what needs no write.
  while (node.up && node.persisting && node.core->hasReadyWhileWriting()) {
    raft::Ready ready = node.core->readyWhileWriting();
    for (Message& message : ready.messages) send(message);
    handOut(node, ready);
    node.core->advance(ready);
  }
  while (node.up && !node.persisting && node.core->hasReady()) {
    raft::Ready ready = node.core->ready();
    // Nothing of a batch that is not a leader's leaves before every earlier
    // write is durable.
    if (!ready.sendBeforePersist) syncDeferred(node);
    if (!node.up) return;
    // Committed entries were written before this batch: applied at once.
    handOut(node, ready);
    if (ready.sendBeforePersist && !ready.entries.empty() && m_config.diskBacked &&
        m_config.deferLeaderSyncs && !node.core->ownSyncNeeded() && m_rng() % 2 == 0) {
      persistAndSend(node, std::move(ready), true);
      continue;
    }
    Millis delay = node.diskDelay;
    if (m_faultsActive && m_config.faults.slowDiskShare > 0 &&
        static_cast<double>(m_rng() % 10000) < m_config.faults.slowDiskShare * 10000) {
      delay += 1 + static_cast<Millis>(m_rng() % static_cast<std::uint64_t>(std::max<Millis>(
                                                     m_config.faults.slowDiskMax, 1)));
    }
    if (delay > 0 && !(ready.entries.empty() && !ready.hardState && !ready.snapshot &&
                       ready.snapshotChunks.empty())) {
      node.persisting = true;
      if (ready.sendBeforePersist) {
        for (Message& message : ready.messages) send(message);
        ready.messages.clear();
      }
      const NodeId id = node.id;
      const std::uint64_t incarnation = node.incarnation;
      auto shared = std::make_shared<raft::Ready>(std::move(ready));
      schedule(
          m_now + delay,
          [this, id, incarnation, shared] {
            SimNode& target = nodeRef(id);
            if (!target.up || target.incarnation != incarnation) return;  // lost in a crash
            target.persisting = false;
            persistAndSend(target, std::move(*shared));
            processReady(target);
          },
          "persist");
      return;
    }
    persistAndSend(node, std::move(ready));
  }
  if (node.up) checkInvariants(node);
}

void Simulation::syncDeferred(SimNode& node) {
  if (!node.deferredSync) return;
  std::function<void()> sync = std::move(node.deferredSync);
  node.deferredSync = {};
  try {
    sync();
  } catch (const std::exception& error) {
    fail("n" + std::to_string(node.id) + " could not sync: " + error.what());
    crash(node.id);
    return;
  }
  node.durableLast = std::max(node.durableLast, node.deferredThrough);
  if (node.core->term() == node.deferredTerm) node.core->markDurable(node.deferredThrough);
}

void Simulation::persistAndSend(SimNode& node, raft::Ready ready, bool deferSync) {
  const std::string who = "n" + std::to_string(node.id);
  if (ready.hardState) {
    const raft::HardState& state = *ready.hardState;
    if (state.commit < node.disk->hardState().commit) {
      fail(who + " persisted commit went backwards: " + std::to_string(state.commit) + " < " +
           std::to_string(node.disk->hardState().commit));
    }
    if (state.vote != raft::kNoNode) {
      auto [it, inserted] = m_votes.emplace(std::make_pair(node.id, state.term), state.vote);
      if (!inserted && it->second != state.vote) {
        fail(who + " voted twice in term " + std::to_string(state.term) + ": n" +
             std::to_string(it->second) + " and n" + std::to_string(state.vote));
      }
    }
  }
  for (const Entry& entry : ready.entries) {
    Term previousTerm = 0;
    if (&entry != &ready.entries.front()) {
      previousTerm = (&entry - 1)->term;
    } else if (ready.snapshot && ready.snapshot->index + 1 == entry.index) {
      previousTerm = ready.snapshot->term;
    } else if (entry.index > 1) {
      previousTerm = node.disk->term(entry.index - 1).value_or(0);
    }
    const std::pair<std::uint64_t, Term> identity{entryHash(entry), previousTerm};
    auto [it, inserted] =
        m_entryByPosition.emplace(std::make_pair(entry.index, entry.term), identity);
    if (!inserted && it->second != identity) {
      fail(who + " log matching violated at index " + std::to_string(entry.index) + " term " +
           std::to_string(entry.term));
    }
  }
  try {
    if (deferSync) {
      std::function<void()> sync = node.disk->write(ready);
      if (sync) {
        // The newest job syncs the earlier ones' writes too.
        const bool scheduled = static_cast<bool>(node.deferredSync);
        node.deferredSync = std::move(sync);
        node.deferredThrough = ready.entries.back().index;
        node.deferredTerm = node.core->term();
        const NodeId id = node.id;
        const std::uint64_t incarnation = node.incarnation;
        if (m_faultsActive && m_config.faults.crashesPerSecond > 0 && m_rng() % 10 == 0) {
          // The crash that matters here: before the deferred sync ran.
          schedule(
              m_now + static_cast<Millis>(m_rng() % 4),
              [this, id, incarnation] {
                SimNode& target = nodeRef(id);
                if (target.up && target.incarnation == incarnation && target.deferredSync)
                  crashAndRestartLater(id);
              },
              "crash before the deferred sync");
        }
        if (!scheduled) {
          // Mostly a few ms, as the server defers; now and then long enough
          // for the leader to be deposed meanwhile.
          const Millis delay = static_cast<Millis>(m_rng() % 10 == 0 ? m_rng() % 300 : m_rng() % 6);
          schedule(
              m_now + delay,
              [this, id, incarnation] {
                SimNode& target = nodeRef(id);
                if (!target.up || target.incarnation != incarnation) return;  // lost in a crash
                syncDeferred(target);
                processReady(target);
              },
              "deferred sync");
        }
      }
    } else {
      node.disk->persist(ready);
      // Its sync covered the earlier unsynced writes of the same segment
      // (the others were synced when it closed).
      if (!node.deferredSync || !ready.entries.empty()) node.durableLast = node.disk->lastIndex();
    }
  } catch (const std::exception& error) {
    // Nothing was sent: the node stops, as a real server must.
    fail(who + " could not persist: " + error.what());
    crash(node.id);
    return;
  }
  if (ready.snapshot) {
    const raft::SnapshotMeta& meta = *ready.snapshot;
    std::uint64_t digest = 0;
    std::vector<std::string> values;
    if (!decodeState(node.disk->snapshotData(), digest, values)) {
      fail(who + " received an undecodable snapshot at " + std::to_string(meta.index));
    }
    auto known = m_digestAt.find(meta.index);
    if (known != m_digestAt.end() && known->second != digest) {
      fail(who + " installed snapshot " + std::to_string(meta.index) +
           " whose state differs from what others applied");
    }
    node.values = std::move(values);
    node.digest = digest;
    if (meta.index < node.applied) {
      fail(who + " applied index went backwards by a snapshot: " + std::to_string(meta.index) +
           " < " + std::to_string(node.applied));
    }
    node.applied = meta.index;
    ++node.snapshotsInstalled;
    record(who + " installed snapshot at " + std::to_string(meta.index));
  }
  for (Message& message : ready.messages) send(message);
  if (deferSync) {
    node.core->advanceWritten(ready);
  } else {
    node.core->advance(ready);
  }
  maybeSnapshot(node);
}

void Simulation::handOut(SimNode& node, const raft::Ready& ready) {
  const std::string who = "n" + std::to_string(node.id);
  applyEntries(node, ready.committed);
  for (const raft::ReadState& read : ready.reads) {
    auto floor = m_readFloor.find({node.id, read.requestId});
    if (floor != m_readFloor.end()) {
      if (read.index < floor->second) {
        fail(who + " released read " + std::to_string(read.requestId) + " at index " +
             std::to_string(read.index) + " although " + std::to_string(floor->second) +
             " was committed before the read began");
      }
      m_readFloor.erase(floor);
    }
    node.reads.push_back({read.requestId, read.index, m_now, node.core->term()});
  }
}

void Simulation::applyEntries(SimNode& node, const std::vector<Entry>& entries) {
  const std::string who = "n" + std::to_string(node.id);
  for (const Entry& entry : entries) {
    if (entry.index != node.applied + 1) {
      fail(who + " applied index " + std::to_string(entry.index) + " after " +
           std::to_string(node.applied));
    }
    node.digest = mix(mix(node.digest, entry.term), entryHash(entry));
    node.applied = entry.index;
    if (entry.type == EntryType::Normal) node.values.push_back(entry.data);
    auto [it, inserted] = m_digestAt.emplace(entry.index, node.digest);
    if (!inserted && it->second != node.digest) {
      fail(who + " state machine safety violated at index " + std::to_string(entry.index) +
           ": applied a different entry or history than another node");
    }
    auto [committed, first] =
        m_committedTerm.emplace(entry.index, std::make_pair(entry.term, m_steps));
    if (!first && committed->second.first != entry.term) {
      fail(who + " applied term " + std::to_string(entry.term) + " at index " +
           std::to_string(entry.index) + " where term " + std::to_string(committed->second.first) +
           " was applied");
    }
    if (entry.type == EntryType::Normal) m_committedData.emplace(entry.index, entry.data);
    m_highestCommitSeen = std::max(m_highestCommitSeen, entry.index);
  }
}

void Simulation::maybeSnapshot(SimNode& node) {
  if (m_config.snapshotEvery == 0) return;
  const raft::SnapshotMeta current = node.disk->snapshotMeta();
  if (node.applied < current.index + m_config.snapshotEvery) return;
  raft::SnapshotMeta meta;
  meta.index = node.applied;
  meta.term = node.disk->term(node.applied).value_or(0);
  meta.membership = node.core->membershipAt(node.applied);
  node.disk->takeSnapshot(meta, encodeState(node.digest, node.values), m_config.compactionMargin);
  node.core->snapshotTaken(node.applied);
}

void Simulation::send(const Message& message) {
  const std::string text = message.describe();
  if (message.type == raft::MessageType::AppendResponse && !message.reject &&
      message.index > nodeRef(message.from).durableLast) {
    fail("n" + std::to_string(message.from) + " acknowledged index " +
         std::to_string(message.index) + " which is durable only up to " +
         std::to_string(nodeRef(message.from).durableLast));
  }
  if (!linkUp(message.from, message.to) || (m_filter && m_filter(message))) {
    record("drop " + text, false);
    return;
  }
  const double roll = static_cast<double>(m_rng() % 1000000) / 1000000.0;
  if (roll < m_dropRate) {
    record("lost " + text, false);
    return;
  }
  const int copies = static_cast<double>(m_rng() % 1000000) / 1000000.0 < m_duplicateRate ? 2 : 1;
  const std::uint64_t incarnation = nodeRef(message.from).incarnation;
  for (int copy = 0; copy < copies; ++copy) {
    schedule(
        m_now + networkDelay(),
        [this, message, incarnation] {
          if (nodeRef(message.from).powerCutIncarnation == incarnation && m_rng() % 2 == 0) {
            record("lost in a power cut " + message.describe(), false);
            return;
          }
          deliver(message);
        },
        "deliver");
  }
}

Millis Simulation::networkDelay() {
  return m_minDelay +
         static_cast<Millis>(m_rng() % static_cast<std::uint64_t>(m_maxDelay - m_minDelay + 1));
}

void Simulation::deliver(const Message& message) {
  SimNode& target = nodeRef(message.to);
  if (!target.up || !linkUp(message.from, message.to)) return;
  ++m_messagesDelivered;
  if (m_traceMessages) record("recv " + message.describe(), false);
  target.core->step(message);
  processReady(target);
}

// ----- invariants -----

void Simulation::record(std::string line, bool notify) {
  if (notify && m_observer) m_observer(m_now, line, nullptr);
  if (!m_violation.empty()) return;  // keep the events that led to the failure
  m_trace.push_back("[" + std::to_string(m_now) + "ms] " + std::move(line));
  if (m_trace.size() > kTraceLength) m_trace.pop_front();
}

void Simulation::fail(const std::string& what) {
  if (!m_violation.empty()) return;
  record("VIOLATION: " + what);
  m_violation =
      what + " (at " + std::to_string(m_now) + "ms, step " + std::to_string(m_steps) + ")";
}

void Simulation::checkInvariants(SimNode& node) {
  const std::string who = "n" + std::to_string(node.id);
  const raft::Status status = node.core->status();
  if (status.commit < node.lastCommit) {
    fail(who + " commit index went backwards: " + std::to_string(status.commit) + " < " +
         std::to_string(node.lastCommit));
  }
  const Index previousCommit = node.lastCommit;
  node.lastCommit = status.commit;
  if (status.role != Role::Leader) return;
  if (node.commitCheckedTerm != status.term ||
      node.commitCheckedVoters != status.membership.voters) {
    // What was committed when it was elected it learned as a follower, and a
    // commit made just before a membership change counted the voters before.
    node.commitCheckedTerm = status.term;
    node.commitCheckedVoters = status.membership.voters;
  } else if (status.commit > previousCommit) {
    // Thesis §10.2.1: a leader counts its own copy only once it is durable.
    std::vector<Index> matches;
    for (const raft::PeerProgress& peer : status.progress) {
      if (!peer.voter) continue;
      matches.push_back(peer.id == node.id ? std::min(peer.match, node.durableLast) : peer.match);
    }
    std::sort(matches.begin(), matches.end(), std::greater<>());
    const std::size_t quorum = status.membership.voters.size() / 2 + 1;
    if (matches.size() >= quorum && status.commit > matches[quorum - 1]) {
      fail(who + " committed " + std::to_string(status.commit) +
           " counting its own copy, which is durable only up to " +
           std::to_string(node.durableLast));
    }
  }
  auto [it, inserted] = m_leaderOfTerm.emplace(status.term, node.id);
  if (!inserted && it->second != node.id) {
    fail("two leaders in term " + std::to_string(status.term) + ": n" + std::to_string(it->second) +
         " and " + who);
  }
  if (inserted) node.electedAtStep = m_steps;
  if (node.completenessCheckedTerm == status.term || node.persisting) return;
  // Leader completeness: every entry applied anywhere before this leader was
  // elected is in its (now persisted) log.
  node.completenessCheckedTerm = status.term;
  const Index first = node.disk->firstIndex();
  for (const auto& [index, applied] : m_committedTerm) {
    if (applied.second >= node.electedAtStep || index < first) continue;
    const std::optional<Term> term = node.disk->term(index);
    if (!term || *term != applied.first) {
      fail("leader completeness: " + who + " leads term " + std::to_string(status.term) +
           " without committed entry " + std::to_string(index) + " of term " +
           std::to_string(applied.first));
      return;
    }
  }
}

bool Simulation::isUp(NodeId id) const { return nodeRef(id).up; }

raft::Status Simulation::status(NodeId id) const {
  const SimNode& node = nodeRef(id);
  if (!node.up) {
    raft::Status down;
    down.id = id;
    return down;
  }
  return node.core->status();
}

std::optional<NodeId> Simulation::leader() const {
  std::optional<NodeId> best;
  Term bestTerm = 0;
  for (const auto& node : m_nodes) {
    if (!node->up || node->core->role() != Role::Leader) continue;
    if (!best || node->core->term() > bestTerm) {
      best = node->id;
      bestTerm = node->core->term();
    }
  }
  return best;
}

std::vector<std::string> Simulation::appliedValues(NodeId id) const { return nodeRef(id).values; }

Index Simulation::appliedIndex(NodeId id) const { return nodeRef(id).applied; }

const std::vector<ReleasedRead>& Simulation::releasedReads(NodeId id) const {
  return nodeRef(id).reads;
}

std::vector<Entry> Simulation::persistedLog(NodeId id) const {
  const SimNode& node = nodeRef(id);
  if (!node.disk || node.disk->lastIndex() < node.disk->firstIndex()) return {};
  return node.disk->entries(node.disk->firstIndex(), node.disk->lastIndex() + 1, SIZE_MAX);
}

raft::HardState Simulation::persistedHardState(NodeId id) const {
  const SimNode& node = nodeRef(id);
  return node.disk ? node.disk->hardState() : raft::HardState{};
}

std::uint64_t Simulation::snapshotsInstalled(NodeId id) const {
  return nodeRef(id).snapshotsInstalled;
}

std::vector<std::string> Simulation::recentEvents() const {
  return {m_trace.begin(), m_trace.end()};
}

std::string Simulation::report() const {
  std::ostringstream out;
  out << (m_violation.empty() ? std::string("no violation") : "VIOLATION: " + m_violation) << "\n";
  out << "replay: " << m_config.replayCommand() << "\n";
  out << "last events:\n";
  for (const std::string& line : m_trace) out << "  " << line << "\n";
  return out.str();
}

// ----- randomized scenario -----

void Simulation::injectRandomFaults() {
  const FaultMix& faults = m_config.faults;
  const double tick = static_cast<double>(m_config.tickMillis) / 1000.0;
  auto chance = [&](double probability) {
    return static_cast<double>(m_rng() % 1000000) / 1000000.0 < probability;
  };
  const auto count = static_cast<std::uint64_t>(m_nodes.size());
  if (faults.partitionsPerSecond > 0 && chance(faults.partitionsPerSecond * tick)) {
    std::vector<std::pair<NodeId, NodeId>> links;
    const NodeId a = 1 + m_rng() % count;
    if (chance(faults.oneWayShare)) {
      NodeId b = 1 + m_rng() % count;
      if (b == a) b = b % count + 1;
      if (a != b) links.push_back({a, b});
    } else if (chance(0.5)) {
      for (NodeId b = 1; b <= count; ++b) {
        if (b == a) continue;
        links.push_back({a, b});
        links.push_back({b, a});
      }
    } else {
      std::vector<NodeId> side;
      for (NodeId id = 1; id <= count; ++id) {
        if (chance(0.5)) side.push_back(id);
      }
      for (NodeId x = 1; x <= count; ++x) {
        for (NodeId y = 1; y <= count; ++y) {
          const bool xs = std::find(side.begin(), side.end(), x) != side.end();
          const bool ys = std::find(side.begin(), side.end(), y) != side.end();
          if (xs != ys) links.push_back({x, y});
        }
      }
    }
    for (const auto& [from, to] : links) cut(from, to);
    const Millis length =
        faults.partitionLength / 2 +
        static_cast<Millis>(m_rng() % static_cast<std::uint64_t>(faults.partitionLength + 1));
    schedule(
        m_now + length,
        [this, links] {
          for (const auto& link : links) {
            auto it = m_cutLinks.find(link);
            if (it != m_cutLinks.end() && --it->second <= 0) m_cutLinks.erase(it);
          }
          record("partition healed");
        },
        "heal");
  }
  if (faults.crashesPerSecond > 0 && chance(faults.crashesPerSecond * tick)) {
    crashAndRestartLater(static_cast<NodeId>(1 + m_rng() % count));
  }
}

void Simulation::crashAndRestartLater(NodeId victim) {
  if (!nodeRef(victim).up) return;
  crash(victim);
  const Millis downtime =
      m_config.faults.crashDowntime / 2 +
      static_cast<Millis>(m_rng() % static_cast<std::uint64_t>(m_config.faults.crashDowntime + 1));
  schedule(
      m_now + downtime, [this, victim] { restart(victim); }, "restart");
}

void Simulation::churnMembership() {
  // Cycles one node at a time out of the cluster and back in: remove it, add
  // it again as a learner, promote it once it has caught up.
  const std::optional<NodeId> current = leader();
  if (!current) return;
  const raft::Status status = nodeRef(*current).core->status();
  if (m_churnTarget == raft::kNoNode) {
    m_churnTarget = 1 + m_rng() % m_nodes.size();
    if (!status.membership.isVoter(m_churnTarget) || status.membership.voters.size() < 2) {
      m_churnTarget = raft::kNoNode;
      return;
    }
  }
  const NodeId target = m_churnTarget;
  raft::ConfigChange change;
  change.node = target;
  if (status.membership.isVoter(target)) {
    if (m_churnPhase != 0) {  // promoted: the cycle is complete
      m_churnTarget = raft::kNoNode;
      m_churnPhase = 0;
      return;
    }
    change.kind = raft::ConfigChange::Kind::Remove;
  } else if (!status.membership.contains(target)) {
    m_churnPhase = 1;
    change.kind = raft::ConfigChange::Kind::AddLearner;
  } else {
    m_churnPhase = 2;
    const auto progress = std::find_if(status.progress.begin(), status.progress.end(),
                                       [&](const raft::PeerProgress& p) { return p.id == target; });
    if (progress == status.progress.end() || !progress->caughtUp) return;
    change.kind = raft::ConfigChange::Kind::Promote;
  }
  const ProposeResult result = proposeChange(*current, change);
  record("membership: " + std::string(raft::toString(change.kind)) + " n" + std::to_string(target) +
         " at n" + std::to_string(*current) + ": " + std::string(raft::toString(result)));
}

bool Simulation::runScenario() {
  m_dropRate = m_config.faults.dropRate;
  m_duplicateRate = m_config.faults.duplicateRate;
  m_faultsActive = true;
  const Millis faultyEnd = m_now + m_config.faultyPeriod;
  const Millis tick = m_config.tickMillis;
  for (Millis at = m_now + tick; at < faultyEnd; at += tick) {
    schedule(
        at, [this] { injectRandomFaults(); }, "faults");
  }
  if (m_config.proposalsPerSecond > 0) {
    const Millis interval =
        std::max<Millis>(1, static_cast<Millis>(1000.0 / m_config.proposalsPerSecond));
    std::uint64_t counter = 0;
    for (Millis at = m_now + interval; at < faultyEnd; at += interval) {
      const std::uint64_t n = ++counter;
      schedule(
          at,
          [this, n] {
            const std::optional<NodeId> current = leader();
            if (!current) return;
            propose(*current, "v" + std::to_string(n));
            if (n % 5 == 0) {
              const auto mode = n % 10 == 0 ? raft::ReadMode::Lease : raft::ReadMode::ReadIndex;
              readIndex(*current, n, mode);
            }
            if (n % 10 == 0) {
              // A client still connected to a deposed leader reads there too:
              // its lease must have run out before another leader commits.
              for (const auto& node : m_nodes) {
                if (node->id != *current && node->up && node->core->role() == Role::Leader) {
                  readIndex(node->id, n, raft::ReadMode::Lease);
                }
              }
            }
            if (m_config.mixName == "chaos" && n % 37 == 0) {
              const NodeId target = 1 + m_rng() % m_nodes.size();
              transferLeadership(*current, target);
            }
          },
          "client");
    }
  }
  if (m_config.faults.changesPerSecond > 0 && m_nodes.size() > 1) {
    const Millis interval =
        std::max<Millis>(1, static_cast<Millis>(1000.0 / m_config.faults.changesPerSecond));
    for (Millis at = m_now + interval; at < faultyEnd; at += interval) {
      schedule(
          at, [this] { churnMembership(); }, "membership");
    }
  }
  runFor(m_config.faultyPeriod);
  // Heal everything, then the cluster must make progress again.
  m_faultsActive = false;
  heal();
  for (const auto& node : m_nodes) {
    node->diskDelay = 0;
    if (!node->up) restart(node->id);
  }
  if (!commitValue("liveness", m_config.livenessBound)) {
    fail("liveness: no proposal committed within " + std::to_string(m_config.livenessBound) +
         "ms after the faults healed");
  }
  return ok();
}

SimConfig sweepConfig(std::uint64_t seed, const SimConfig& base, const std::string& mixName) {
  SimConfig config = base;
  config.seed = seed;
  const std::vector<std::string> names = FaultMix::names();
  config.mixName = mixName.empty() ? names[seed % names.size()] : mixName;
  config.faults = FaultMix::named(config.mixName).value_or(FaultMix{});
  static constexpr int kSizes[] = {3, 5, 5, 7, 3, 5, 9, 1, 5, 3, 7};
  config.nodes = kSizes[(seed / names.size()) % std::size(kSizes)];
  static constexpr Index kSnapshotEvery[] = {0, 8, 30};
  config.snapshotEvery = kSnapshotEvery[(seed / 3) % std::size(kSnapshotEvery)];
  return config;
}

std::vector<SeedResult> sweep(std::uint64_t first, std::uint64_t last, const SimConfig& base,
                              const std::string& mixName) {
  std::vector<SeedResult> failures;
  for (std::uint64_t seed = first; seed <= last; ++seed) {
    Simulation simulation(sweepConfig(seed, base, mixName));
    if (!simulation.runScenario()) {
      failures.push_back({seed, false, simulation.report(), simulation.stepsRun()});
    }
  }
  return failures;
}

}  // namespace copycat::sim
