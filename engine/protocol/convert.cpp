#include "engine/protocol/convert.h"

#include <limits>
#include <type_traits>
#include <utility>

namespace copycat::protocol {

// The core's enums must all have a wire counterpart: when one grows, extend
// copycat.proto and the switches below.
static_assert(static_cast<int>(raft::MessageType::TimeoutNow) == 10 &&
                  wire::RaftMessageType_MAX == 11,
              "raft::MessageType and wire::RaftMessageType differ");
static_assert(static_cast<int>(raft::EntryType::ConfigChange) == 2 && wire::EntryType_MAX == 3,
              "raft::EntryType and wire::EntryType differ");
static_assert(static_cast<int>(raft::ConfigChange::Kind::Remove) == 4 &&
                  wire::ConfigChangeKind_MAX == 5,
              "raft::ConfigChange::Kind and wire::ConfigChangeKind differ");
static_assert(static_cast<int>(raft::Role::Leader) == 3 && wire::Role_MAX == 4,
              "raft::Role and wire::Role differ");

wire::RaftMessageType toWire(raft::MessageType type) {
  using T = raft::MessageType;
  switch (type) {
    case T::PreVote:
      return wire::RAFT_MESSAGE_TYPE_PRE_VOTE;
    case T::PreVoteResponse:
      return wire::RAFT_MESSAGE_TYPE_PRE_VOTE_RESPONSE;
    case T::Vote:
      return wire::RAFT_MESSAGE_TYPE_VOTE;
    case T::VoteResponse:
      return wire::RAFT_MESSAGE_TYPE_VOTE_RESPONSE;
    case T::Append:
      return wire::RAFT_MESSAGE_TYPE_APPEND;
    case T::AppendResponse:
      return wire::RAFT_MESSAGE_TYPE_APPEND_RESPONSE;
    case T::Heartbeat:
      return wire::RAFT_MESSAGE_TYPE_HEARTBEAT;
    case T::HeartbeatResponse:
      return wire::RAFT_MESSAGE_TYPE_HEARTBEAT_RESPONSE;
    case T::InstallSnapshot:
      return wire::RAFT_MESSAGE_TYPE_INSTALL_SNAPSHOT;
    case T::InstallSnapshotResponse:
      return wire::RAFT_MESSAGE_TYPE_INSTALL_SNAPSHOT_RESPONSE;
    case T::TimeoutNow:
      return wire::RAFT_MESSAGE_TYPE_TIMEOUT_NOW;
  }
  return wire::RAFT_MESSAGE_TYPE_UNSPECIFIED;
}

std::optional<raft::MessageType> fromWire(wire::RaftMessageType type) {
  using T = raft::MessageType;
  switch (type) {
    case wire::RAFT_MESSAGE_TYPE_PRE_VOTE:
      return T::PreVote;
    case wire::RAFT_MESSAGE_TYPE_PRE_VOTE_RESPONSE:
      return T::PreVoteResponse;
    case wire::RAFT_MESSAGE_TYPE_VOTE:
      return T::Vote;
    case wire::RAFT_MESSAGE_TYPE_VOTE_RESPONSE:
      return T::VoteResponse;
    case wire::RAFT_MESSAGE_TYPE_APPEND:
      return T::Append;
    case wire::RAFT_MESSAGE_TYPE_APPEND_RESPONSE:
      return T::AppendResponse;
    case wire::RAFT_MESSAGE_TYPE_HEARTBEAT:
      return T::Heartbeat;
    case wire::RAFT_MESSAGE_TYPE_HEARTBEAT_RESPONSE:
      return T::HeartbeatResponse;
    case wire::RAFT_MESSAGE_TYPE_INSTALL_SNAPSHOT:
      return T::InstallSnapshot;
    case wire::RAFT_MESSAGE_TYPE_INSTALL_SNAPSHOT_RESPONSE:
      return T::InstallSnapshotResponse;
    case wire::RAFT_MESSAGE_TYPE_TIMEOUT_NOW:
      return T::TimeoutNow;
    default:
      return std::nullopt;
  }
}

wire::EntryType toWire(raft::EntryType type) {
  switch (type) {
    case raft::EntryType::Normal:
      return wire::ENTRY_TYPE_NORMAL;
    case raft::EntryType::Noop:
      return wire::ENTRY_TYPE_NOOP;
    case raft::EntryType::ConfigChange:
      return wire::ENTRY_TYPE_CONFIG_CHANGE;
  }
  return wire::ENTRY_TYPE_UNSPECIFIED;
}

std::optional<raft::EntryType> fromWire(wire::EntryType type) {
  switch (type) {
    case wire::ENTRY_TYPE_NORMAL:
      return raft::EntryType::Normal;
    case wire::ENTRY_TYPE_NOOP:
      return raft::EntryType::Noop;
    case wire::ENTRY_TYPE_CONFIG_CHANGE:
      return raft::EntryType::ConfigChange;
    default:
      return std::nullopt;
  }
}

wire::ConfigChangeKind toWire(raft::ConfigChange::Kind kind) {
  using K = raft::ConfigChange::Kind;
  switch (kind) {
    case K::AddLearner:
      return wire::CONFIG_CHANGE_KIND_ADD_LEARNER;
    case K::Promote:
      return wire::CONFIG_CHANGE_KIND_PROMOTE;
    case K::AddVoter:
      return wire::CONFIG_CHANGE_KIND_ADD_VOTER;
    case K::Demote:
      return wire::CONFIG_CHANGE_KIND_DEMOTE;
    case K::Remove:
      return wire::CONFIG_CHANGE_KIND_REMOVE;
  }
  return wire::CONFIG_CHANGE_KIND_UNSPECIFIED;
}

std::optional<raft::ConfigChange::Kind> fromWire(wire::ConfigChangeKind kind) {
  using K = raft::ConfigChange::Kind;
  switch (kind) {
    case wire::CONFIG_CHANGE_KIND_ADD_LEARNER:
      return K::AddLearner;
    case wire::CONFIG_CHANGE_KIND_PROMOTE:
      return K::Promote;
    case wire::CONFIG_CHANGE_KIND_ADD_VOTER:
      return K::AddVoter;
    case wire::CONFIG_CHANGE_KIND_DEMOTE:
      return K::Demote;
    case wire::CONFIG_CHANGE_KIND_REMOVE:
      return K::Remove;
    default:
      return std::nullopt;
  }
}

wire::Role toWire(raft::Role role) {
  switch (role) {
    case raft::Role::Follower:
      return wire::ROLE_FOLLOWER;
    case raft::Role::PreCandidate:
      return wire::ROLE_PRE_CANDIDATE;
    case raft::Role::Candidate:
      return wire::ROLE_CANDIDATE;
    case raft::Role::Leader:
      return wire::ROLE_LEADER;
  }
  return wire::ROLE_UNSPECIFIED;
}

std::optional<raft::Role> fromWire(wire::Role role) {
  switch (role) {
    case wire::ROLE_FOLLOWER:
      return raft::Role::Follower;
    case wire::ROLE_PRE_CANDIDATE:
      return raft::Role::PreCandidate;
    case wire::ROLE_CANDIDATE:
      return raft::Role::Candidate;
    case wire::ROLE_LEADER:
      return raft::Role::Leader;
    default:
      return std::nullopt;
  }
}

namespace {

bool failWith(std::string* error, std::string text) {
  if (error != nullptr) *error = std::move(text);
  return false;
}

// Fills `out` from `entry`, moving its data when E is an rvalue entry.
template <class E>
void entryToWire(E&& entry, wire::Entry& out) {
  out.set_term(entry.term);
  out.set_index(entry.index);
  out.set_type(toWire(entry.type));
  // A change on a non-ConfigChange entry is meaningless; it is sent only
  // when it differs from the default, so that round trips stay exact.
  if (entry.type == raft::EntryType::ConfigChange || entry.change != raft::ConfigChange{}) {
    out.set_change_kind(toWire(entry.change.kind));
    out.set_change_node(entry.change.node);
  } else {
    out.set_change_kind(wire::CONFIG_CHANGE_KIND_UNSPECIFIED);
    out.set_change_node(0);
  }
  if constexpr (std::is_rvalue_reference_v<E&&>) {
    out.set_data(std::move(entry.data));
  } else {
    out.set_data(entry.data);
  }
}

template <class M>
void messageToWire(M&& message, wire::RaftMessage& out) {
  out.Clear();
  out.set_type(toWire(message.type));
  out.set_from(message.from);
  out.set_to(message.to);
  out.set_term(message.term);
  out.set_log_term(message.logTerm);
  out.set_index(message.index);
  out.mutable_entries()->Reserve(static_cast<int>(message.entries.size()));
  for (auto& entry : message.entries) {
    if constexpr (std::is_rvalue_reference_v<M&&>) {
      entryToWire(std::move(entry), *out.add_entries());
    } else {
      entryToWire(entry, *out.add_entries());
    }
  }
  out.set_commit(message.commit);
  out.set_reject(message.reject);
  out.set_hint_index(message.hintIndex);
  out.set_hint_term(message.hintTerm);
  out.set_context(message.context);
  if (message.snapshot != raft::SnapshotMeta{}) toWire(message.snapshot, *out.mutable_snapshot());
  out.set_offset(message.offset);
  if constexpr (std::is_rvalue_reference_v<M&&>) {
    out.set_data(std::move(message.data));
  } else {
    out.set_data(message.data);
  }
  out.set_done(message.done);
}

template <class E>
bool entryFromWire(E&& entry, raft::Entry& out, std::string* error) {
  const auto type = fromWire(entry.type());
  if (!type) {
    return failWith(error, "entry " + std::to_string(entry.index()) + " has an invalid type (" +
                               std::to_string(static_cast<int>(entry.type())) + ")");
  }
  out.term = entry.term();
  out.index = entry.index();
  out.type = *type;
  if (entry.change_kind() == wire::CONFIG_CHANGE_KIND_UNSPECIFIED) {
    if (*type == raft::EntryType::ConfigChange) {
      return failWith(
          error, "config change entry " + std::to_string(entry.index()) + " has no change kind");
    }
    out.change = raft::ConfigChange{};
  } else {
    const auto kind = fromWire(entry.change_kind());
    if (!kind) {
      return failWith(error, "entry " + std::to_string(entry.index()) +
                                 " has an invalid change kind (" +
                                 std::to_string(static_cast<int>(entry.change_kind())) + ")");
    }
    out.change.kind = *kind;
  }
  out.change.node = entry.change_node();
  if constexpr (std::is_rvalue_reference_v<E&&>) {
    out.data = std::move(*entry.mutable_data());
  } else {
    out.data = entry.data();
  }
  return true;
}

// Strictly increasing and non-zero.
template <class Ids>
bool validIds(const Ids& ids) {
  raft::NodeId previous = raft::kNoNode;
  for (raft::NodeId id : ids) {
    if (id <= previous) return false;
    previous = id;
  }
  return true;
}

bool snapshotFromWire(const wire::SnapshotMeta& meta, raft::SnapshotMeta& out, std::string* error) {
  if (!validIds(meta.voters())) {
    return failWith(error, "snapshot voters are not strictly increasing non-zero ids");
  }
  if (!validIds(meta.learners())) {
    return failWith(error, "snapshot learners are not strictly increasing non-zero ids");
  }
  out.index = meta.index();
  out.term = meta.term();
  out.membership.voters.assign(meta.voters().begin(), meta.voters().end());
  out.membership.learners.assign(meta.learners().begin(), meta.learners().end());
  for (raft::NodeId learner : out.membership.learners) {
    if (out.membership.isVoter(learner)) {
      return failWith(error,
                      "snapshot node " + std::to_string(learner) + " is both voter and learner");
    }
  }
  out.size = meta.size();
  out.checksum = meta.checksum();
  return true;
}

template <class M>
std::optional<raft::Message> messageFromWire(M&& message, std::string* error) {
  const auto type = fromWire(message.type());
  if (!type) {
    failWith(error, "raft message has an invalid type (" +
                        std::to_string(static_cast<int>(message.type())) + ")");
    return std::nullopt;
  }
  if (message.from() == raft::kNoNode || message.to() == raft::kNoNode) {
    failWith(error, "raft message " + std::string(raft::toString(*type)) +
                        " has no sender or no recipient");
    return std::nullopt;
  }
  raft::Message out;
  out.type = *type;
  out.from = message.from();
  out.to = message.to();
  out.term = message.term();
  out.logTerm = message.log_term();
  out.index = message.index();
  out.commit = message.commit();
  out.reject = message.reject();
  out.hintIndex = message.hint_index();
  out.hintTerm = message.hint_term();
  out.context = message.context();
  out.offset = message.offset();
  out.done = message.done();

  const auto count = static_cast<std::size_t>(message.entries_size());
  if (count > 0) {
    const std::string where =
        std::string(raft::toString(*type)) + " from " + std::to_string(out.from) + ": ";
    if (*type != raft::MessageType::Append) {
      failWith(error, where + "only Append messages carry entries");
      return std::nullopt;
    }
    if (out.index > std::numeric_limits<raft::Index>::max() - count) {
      failWith(error, where + "entry indexes overflow");
      return std::nullopt;
    }
    out.entries.resize(count);
    raft::Term previousTerm = 0;
    for (std::size_t i = 0; i < count; ++i) {
      raft::Entry& entry = out.entries[i];
      std::string entryError;
      const bool ok = [&] {
        if constexpr (std::is_rvalue_reference_v<M&&>) {
          return entryFromWire(std::move(*message.mutable_entries(static_cast<int>(i))), entry,
                               &entryError);
        } else {
          return entryFromWire(message.entries(static_cast<int>(i)), entry, &entryError);
        }
      }();
      if (!ok) {
        failWith(error, where + entryError);
        return std::nullopt;
      }
      if (entry.index != out.index + 1 + i) {
        failWith(error, where + "entry " + std::to_string(entry.index) + " is not at position " +
                            std::to_string(out.index + 1 + i));
        return std::nullopt;
      }
      if (entry.term < previousTerm || entry.term > out.term) {
        failWith(error, where + "entry " + std::to_string(entry.index) + " has term " +
                            std::to_string(entry.term) +
                            ", out of order or newer than the message's term " +
                            std::to_string(out.term));
        return std::nullopt;
      }
      previousTerm = entry.term;
    }
  }
  if (message.has_snapshot()) {
    std::string snapshotError;
    if (!snapshotFromWire(message.snapshot(), out.snapshot, &snapshotError)) {
      failWith(error, std::string(raft::toString(*type)) + " from " + std::to_string(out.from) +
                          ": " + snapshotError);
      return std::nullopt;
    }
  }
  if constexpr (std::is_rvalue_reference_v<M&&>) {
    out.data = std::move(*message.mutable_data());
  } else {
    out.data = message.data();
  }
  return out;
}

}  // namespace

void toWire(const raft::Entry& entry, wire::Entry& out) { entryToWire(entry, out); }

void toWire(raft::Entry&& entry, wire::Entry& out) { entryToWire(std::move(entry), out); }

void toWire(const raft::SnapshotMeta& meta, wire::SnapshotMeta& out) {
  out.set_index(meta.index);
  out.set_term(meta.term);
  out.mutable_voters()->Assign(meta.membership.voters.begin(), meta.membership.voters.end());
  out.mutable_learners()->Assign(meta.membership.learners.begin(), meta.membership.learners.end());
  out.set_size(meta.size);
  out.set_checksum(meta.checksum);
}

void toWire(const raft::Message& message, wire::RaftMessage& out) { messageToWire(message, out); }

void toWire(raft::Message&& message, wire::RaftMessage& out) {
  messageToWire(std::move(message), out);
}

wire::Frame toFrame(const raft::Message& message) {
  wire::Frame frame;
  toWire(message, *frame.mutable_raft());
  return frame;
}

wire::Frame toFrame(raft::Message&& message) {
  wire::Frame frame;
  toWire(std::move(message), *frame.mutable_raft());
  return frame;
}

std::optional<raft::Entry> fromWire(const wire::Entry& entry, std::string* error) {
  raft::Entry out;
  if (!entryFromWire(entry, out, error)) return std::nullopt;
  return out;
}

std::optional<raft::SnapshotMeta> fromWire(const wire::SnapshotMeta& meta, std::string* error) {
  raft::SnapshotMeta out;
  if (!snapshotFromWire(meta, out, error)) return std::nullopt;
  return out;
}

std::optional<raft::Message> fromWire(const wire::RaftMessage& message, std::string* error) {
  return messageFromWire(message, error);
}

std::optional<raft::Message> fromWire(wire::RaftMessage&& message, std::string* error) {
  return messageFromWire(std::move(message), error);
}

}  // namespace copycat::protocol
