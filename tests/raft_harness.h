#pragma once

// A tiny synchronous harness around raft::Node, in the spirit of etcd-raft's
// test `network`: N cores, each with a raft::MemoryStorage, a FIFO queue of
// messages between them, per-link cuts, and a hook that can observe, rewrite
// or drop any message. Nothing happens unless the test says so: ticks are
// explicit, and deliverAll() runs the queue until it is empty.
//
// drain() honours the Ready contract of node.h: snapshot chunks are stored,
// an installed snapshot, the entries and the hard state are persisted before
// the batch's messages are queued; committed entries are then applied, read
// states recorded, and the batch is acknowledged with advance().
//
// The harness also checks the contract from the outside and records every
// breach in errors() (a test asserts it is empty): committed entries must be
// contiguous and persisted, the persisted term must never go back, a vote
// must never change within a term, Ready numbers must increase.

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/raft/node.h"
#include "engine/raft/storage.h"
#include "engine/raft/types.h"

namespace copycat::test {

using raft::Entry;
using raft::EntryType;
using raft::Index;
using raft::Message;
using raft::MessageType;
using raft::NodeId;
using raft::Role;
using raft::Term;

/// One core with its storage and a trivial state machine: the list of the
/// Normal entries' data it applied, in order.
struct Peer {
  raft::Config config;
  raft::Membership bootstrap;
  std::unique_ptr<raft::MemoryStorage> storage = std::make_unique<raft::MemoryStorage>();
  std::unique_ptr<raft::Node> node;  // null while crashed
  std::string incomingSnapshot;      // chunks received so far
  std::vector<std::string> values;   // the state machine
  Index appliedIndex = 0;
  std::vector<Entry> applied;  // every entry applied since the last (re)start
  std::vector<raft::ReadState> reads;
  std::vector<raft::CoreEvent> events;
  std::uint64_t snapshotsInstalled = 0;
  std::uint64_t lastReadyNumber = 0;
};

/// Encodes the state machine as a snapshot: one value per line.
inline std::string encodeValues(const std::vector<std::string>& values) {
  std::string out;
  for (const std::string& value : values) out += value + '\n';
  return out;
}

inline std::vector<std::string> decodeValues(const std::string& data) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < data.size()) {
    const std::size_t end = data.find('\n', start);
    out.push_back(data.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

class Network {
 public:
  /// `voters` nodes with ids 1..voters, all bootstrapped with the same voter
  /// set. `base` gives the tunables; each node gets its id and a seed derived
  /// from base.seed and its id.
  explicit Network(int voters, const raft::Config& base = {}) : m_base(base) {
    raft::Membership membership;
    for (int i = 1; i <= voters; ++i) membership.voters.push_back(static_cast<NodeId>(i));
    for (int i = 1; i <= voters; ++i) addPeer(static_cast<NodeId>(i), membership);
  }

  /// Adds a node with an empty storage and `membership` (empty: it joins an
  /// existing cluster and learns the membership from the leader).
  NodeId addPeer(NodeId id, const raft::Membership& membership = {}) {
    Peer& peer = m_peers[id];
    peer.config = m_base;
    peer.config.id = id;
    peer.config.seed = m_base.seed * 1000 + id;
    peer.bootstrap = membership;
    start(id);
    return id;
  }

  raft::Node& node(NodeId id) { return *m_peers.at(id).node; }
  Peer& peer(NodeId id) { return m_peers.at(id); }
  raft::MemoryStorage& storage(NodeId id) { return *m_peers.at(id).storage; }
  raft::Status status(NodeId id) { return node(id).status(); }
  bool isUp(NodeId id) const { return m_peers.at(id).node != nullptr; }
  std::vector<NodeId> ids() const {
    std::vector<NodeId> out;
    for (const auto& [id, peer] : m_peers) out.push_back(id);
    return out;
  }
  const std::vector<std::string>& errors() const { return m_errors; }
  std::string errorText() const {
    std::string out;
    for (const std::string& error : m_errors) out += error + "\n";
    return out;
  }

  // ----- driving one node -----

  /// Persists, applies and queues everything the node has ready.
  void drain(NodeId id) {
    Peer& peer = m_peers.at(id);
    while (peer.node && peer.node->hasReady()) {
      raft::Ready ready = peer.node->ready();
      if (ready.number <= peer.lastReadyNumber) {
        error(id, "Ready number did not increase: " + std::to_string(ready.number));
      }
      peer.lastReadyNumber = ready.number;
      persist(id, peer, ready);
      for (Message message : ready.messages) {
        if (message.from != id) error(id, "message with from=" + std::to_string(message.from));
        m_queue.push_back(std::move(message));
      }
      apply(id, peer, ready);
      for (const raft::ReadState& read : ready.reads) peer.reads.push_back(read);
      peer.node->advance(ready);
    }
  }

  void tick(NodeId id, int times = 1) {
    for (int i = 0; i < times; ++i) {
      if (!isUp(id)) return;
      node(id).tick();
      drain(id);
    }
  }
  void tickAll(int times = 1) {
    for (int i = 0; i < times; ++i) {
      for (NodeId id : ids()) tick(id);
    }
  }
  /// Ticks every live node once and delivers everything, `rounds` times.
  void run(int rounds) {
    for (int i = 0; i < rounds; ++i) {
      tickAll();
      deliverAll();
    }
  }

  /// Steps `message` into its destination right now (no link checks).
  void inject(const Message& message) {
    if (!isUp(message.to)) return;
    node(message.to).step(message);
    drain(message.to);
  }

  /// Starts an election at `id` and delivers until quiet. Returns true when
  /// `id` became leader.
  bool elect(NodeId id) {
    node(id).campaign();
    drain(id);
    deliverAll();
    return isUp(id) && node(id).role() == Role::Leader;
  }

  /// Proposes at `id` and drains it (no delivery).
  raft::ProposeResult propose(NodeId id, const std::string& data) {
    const raft::ProposeResult result = node(id).propose(data);
    drain(id);
    return result;
  }

  /// One heartbeat round from `leader`: ticks it heartbeatTicks times and
  /// delivers until quiet.
  void heartbeat(NodeId leader) {
    tick(leader, m_base.heartbeatTicks);
    deliverAll();
  }

  // ----- the network -----

  /// Delivers queued messages in FIFO order (including the ones they cause)
  /// until the queue is empty. Returns the number delivered.
  std::size_t deliverAll(std::size_t limit = 1'000'000) {
    std::size_t delivered = 0;
    while (!m_queue.empty() && delivered < limit) {
      if (deliverOne()) ++delivered;
    }
    if (!m_queue.empty()) error(0, "deliverAll: network did not quiesce");
    return delivered;
  }

  /// Pops the oldest message and delivers it unless a cut, a crash or the
  /// intercept drops it. Returns true when it was stepped into a node.
  bool deliverOne() {
    if (m_queue.empty()) return false;
    Message message = std::move(m_queue.front());
    m_queue.pop_front();
    if (m_cut.count({message.from, message.to}) || !m_peers.count(message.to) ||
        !isUp(message.to)) {
      ++m_dropped;
      return false;
    }
    if (intercept && intercept(message)) {
      ++m_dropped;
      return false;
    }
    node(message.to).step(message);
    drain(message.to);
    return true;
  }

  /// Removes and returns every queued message (nothing is delivered).
  std::vector<Message> take() {
    std::vector<Message> out(std::make_move_iterator(m_queue.begin()),
                             std::make_move_iterator(m_queue.end()));
    m_queue.clear();
    return out;
  }
  /// Removes and returns the queued messages matching `match`.
  std::vector<Message> take(const std::function<bool(const Message&)>& match) {
    std::vector<Message> out;
    std::deque<Message> rest;
    for (Message& message : m_queue) {
      if (match(message)) {
        out.push_back(std::move(message));
      } else {
        rest.push_back(std::move(message));
      }
    }
    m_queue = std::move(rest);
    return out;
  }
  const std::deque<Message>& queue() const { return m_queue; }
  std::uint64_t dropped() const { return m_dropped; }

  void cut(NodeId from, NodeId to) { m_cut.insert({from, to}); }
  void cutBoth(NodeId a, NodeId b) {
    cut(a, b);
    cut(b, a);
  }
  void isolate(NodeId id) {
    for (NodeId other : ids()) {
      if (other != id) cutBoth(id, other);
    }
  }
  void heal() { m_cut.clear(); }

  /// Sees every message before delivery; may rewrite it; returns true to drop.
  std::function<bool(Message&)> intercept;

  // ----- crashes and snapshots -----

  /// Loses the core's memory (the harness persists synchronously, so storage
  /// holds everything the core handed out).
  void crash(NodeId id) {
    Peer& peer = m_peers.at(id);
    peer.node.reset();
    peer.incomingSnapshot.clear();
  }
  void restart(NodeId id) {
    crash(id);
    start(id);
  }

  /// Snapshots `id`'s state machine at its applied index, compacts its
  /// storage keeping `keep` entries, and tells the core.
  Index compact(NodeId id, Index keep = 0) {
    Peer& peer = m_peers.at(id);
    const Index index = peer.appliedIndex;
    raft::SnapshotMeta meta;
    meta.index = index;
    meta.term = peer.storage->term(index).value_or(0);
    meta.membership = peer.node->membershipAt(index);
    std::string data = encodeValues(peer.values);
    meta.size = data.size();
    peer.storage->takeSnapshot(meta, std::move(data), keep);
    peer.node->snapshotTaken(index);
    drain(id);
    return index;
  }

  /// The persisted log of `id` from its first index.
  std::vector<Entry> log(NodeId id) {
    raft::MemoryStorage& store = storage(id);
    if (store.lastIndex() < store.firstIndex()) return {};
    return store.entries(store.firstIndex(), store.lastIndex() + 1, SIZE_MAX);
  }

 private:
  void start(NodeId id) {
    Peer& peer = m_peers.at(id);
    peer.values = decodeValues(peer.storage->snapshotData());
    peer.appliedIndex = peer.storage->snapshotMeta().index;
    peer.applied.clear();
    peer.lastReadyNumber = 0;
    peer.node = std::make_unique<raft::Node>(peer.config, *peer.storage, peer.bootstrap);
    peer.node->setEventSink([&peer](const raft::CoreEvent& event) { peer.events.push_back(event); });
    drain(id);
  }

  void persist(NodeId id, Peer& peer, const raft::Ready& ready) {
    raft::MemoryStorage& store = *peer.storage;
    for (const raft::SnapshotChunk& chunk : ready.snapshotChunks) {
      if (chunk.offset == 0) peer.incomingSnapshot.clear();
      if (chunk.offset != peer.incomingSnapshot.size()) {
        error(id, "snapshot chunk at offset " + std::to_string(chunk.offset) + " but " +
                      std::to_string(peer.incomingSnapshot.size()) + " bytes stored");
        peer.incomingSnapshot.resize(chunk.offset);
      }
      peer.incomingSnapshot += chunk.data;
    }
    if (ready.snapshot) {
      if (peer.incomingSnapshot.size() != ready.snapshot->size) {
        error(id, "snapshot of " + std::to_string(ready.snapshot->size) + " bytes installed from " +
                      std::to_string(peer.incomingSnapshot.size()) + " received bytes");
      }
      store.installSnapshot(*ready.snapshot, peer.incomingSnapshot);
      peer.values = decodeValues(peer.incomingSnapshot);
      peer.appliedIndex = ready.snapshot->index;
      peer.incomingSnapshot.clear();
      ++peer.snapshotsInstalled;
    }
    if (!ready.entries.empty()) store.append(ready.entries);
    if (ready.hardState) {
      const raft::HardState previous = store.hardState();
      const raft::HardState& next = *ready.hardState;
      if (next.term < previous.term) error(id, "persisted term went back");
      if (next.term == previous.term && previous.vote != raft::kNoNode && next.vote != previous.vote) {
        error(id, "vote changed within term " + std::to_string(next.term));
      }
      store.setHardState(next);
    }
  }

  void apply(NodeId id, Peer& peer, const raft::Ready& ready) {
    for (const Entry& entry : ready.committed) {
      if (entry.index <= peer.appliedIndex) continue;  // covered by a snapshot
      if (entry.index != peer.appliedIndex + 1) {
        error(id, "committed entry " + std::to_string(entry.index) + " after applied " +
                      std::to_string(peer.appliedIndex));
      }
      if (entry.index > peer.storage->lastIndex() ||
          peer.storage->term(entry.index) != entry.term) {
        error(id, "committed entry " + std::to_string(entry.index) + " is not persisted");
      }
      peer.appliedIndex = entry.index;
      peer.applied.push_back(entry);
      if (entry.type == EntryType::Normal) peer.values.push_back(entry.data);
    }
  }

  void error(NodeId id, const std::string& text) {
    m_errors.push_back("node " + std::to_string(id) + ": " + text);
  }

  raft::Config m_base;
  std::map<NodeId, Peer> m_peers;
  std::deque<Message> m_queue;
  std::set<std::pair<NodeId, NodeId>> m_cut;
  std::vector<std::string> m_errors;
  std::uint64_t m_dropped = 0;
};

}  // namespace copycat::test
