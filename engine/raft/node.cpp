#include "engine/raft/node.h"

#include "engine/raft/raft_core.h"

namespace copycat::raft {

std::string_view toString(ProposeResult result) {
  switch (result) {
    case ProposeResult::Accepted:
      return "accepted";
    case ProposeResult::NotLeader:
      return "not leader";
    case ProposeResult::TransferInProgress:
      return "leadership transfer in progress";
    case ProposeResult::ChangeInProgress:
      return "another membership change is in progress";
    case ProposeResult::InvalidChange:
      return "invalid membership change";
  }
  return "?";
}

std::string CoreEvent::describe() const {
  std::string out = "n" + std::to_string(node) + " t" + std::to_string(term) + " ";
  switch (kind) {
    case Kind::RoleChanged:
      out += "role " + std::string(toString(role));
      if (peer != kNoNode) out += " (leader n" + std::to_string(peer) + ")";
      break;
    case Kind::TermChanged:
      out += "term changed";
      break;
    case Kind::VoteCast:
      out += "voted for n" + std::to_string(peer);
      break;
    case Kind::CommitAdvanced:
      out += "commit " + std::to_string(index);
      break;
    case Kind::MessageRejected:
      out += "rejected from n" + std::to_string(peer);
      break;
    case Kind::MessageIgnored:
      out += "ignored from n" + std::to_string(peer);
      break;
    case Kind::MembershipChanged:
      out += "membership at " + std::to_string(index);
      break;
    case Kind::SnapshotSending:
      out += "sending snapshot " + std::to_string(index) + " to n" + std::to_string(peer);
      break;
    case Kind::SnapshotInstalled:
      out += "installed snapshot " + std::to_string(index);
      break;
    case Kind::LogCompacted:
      out += "snapshot taken, log compacted to " + std::to_string(index);
      break;
    case Kind::LeaderTransfer:
      out += "leadership transfer to n" + std::to_string(peer);
      break;
    case Kind::ReadReleased:
      out += "read released at " + std::to_string(index);
      break;
  }
  if (!text.empty()) out += ": " + text;
  return out;
}

bool Ready::empty() const {
  return !hardState && entries.empty() && snapshotChunks.empty() && !snapshot && messages.empty() &&
         committed.empty() && reads.empty() && !role;
}

Node::Node(const Config& config, const LogStorage& storage, Membership initialMembership)
    : m_core(std::make_unique<RaftCore>(config, storage, std::move(initialMembership))) {}

Node::~Node() = default;

void Node::setEventSink(EventSink sink) { m_core->setEventSink(std::move(sink)); }
void Node::tick() { m_core->tick(); }
void Node::step(const Message& message) { m_core->step(message); }
ProposeResult Node::propose(std::string data) { return m_core->propose(std::move(data)); }
ProposeResult Node::proposeChange(const ConfigChange& change, std::string data) {
  return m_core->proposeChange(change, std::move(data));
}
ProposeResult Node::readIndex(std::uint64_t requestId, ReadMode mode) {
  return m_core->readIndex(requestId, mode);
}
ProposeResult Node::transferLeadership(NodeId target) { return m_core->transferLeadership(target); }
void Node::campaign() { m_core->campaign(); }
void Node::snapshotTaken(Index index) { m_core->snapshotTaken(index); }
void Node::reportUnreachable(NodeId peer) { m_core->reportUnreachable(peer); }
void Node::reportDisconnected(NodeId peer) { m_core->reportDisconnected(peer); }
Membership Node::membershipAt(Index index) const { return m_core->membershipAt(index); }
bool Node::hasReady() const { return m_core->hasReady(); }
Ready Node::ready() { return m_core->ready(); }
bool Node::hasReadyWhileWriting() const { return m_core->hasReadyWhileWriting(); }
Ready Node::readyWhileWriting() { return m_core->readyWhileWriting(); }
void Node::advance(const Ready& ready) { m_core->advance(ready); }
void Node::advanceWritten(const Ready& ready) { m_core->advanceWritten(ready); }
void Node::markDurable(Index index) { m_core->markDurable(index); }
bool Node::ownSyncNeeded() const { return m_core->ownSyncNeeded(); }
Status Node::status() const { return m_core->status(); }
NodeId Node::id() const { return m_core->id(); }
Role Node::role() const { return m_core->role(); }
Term Node::term() const { return m_core->term(); }
NodeId Node::leader() const { return m_core->leader(); }
Index Node::lastIndex() const { return m_core->lastIndex(); }

}  // namespace copycat::raft
