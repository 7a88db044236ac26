#pragma once

#include <optional>
#include <string>

#include "engine/protocol/copycat.pb.h"
#include "engine/raft/types.h"

namespace copycat::protocol {

// Conversions between the consensus core's types (engine/raft/types.h) and
// their wire messages (copycat.proto). Every field is carried, so that
// fromWire(toWire(x)) == x for any value the core produces.
//
// toWire never fails. fromWire validates what came off the network and never
// throws on bad input: it returns nothing and, when `error` is given, stores
// a one-line explanation there. Checks: every enum is in range and not
// unspecified; sender and recipient are non-zero; only Append carries
// entries, and they are consecutive from index + 1 with non-decreasing terms
// no newer than the message's term; a ConfigChange entry names its change;
// snapshot members are strictly increasing, non-zero and voters and learners
// are disjoint. A message that passes can be stepped into raft::Node.

void toWire(const raft::Entry& entry, wire::Entry& out);
void toWire(raft::Entry&& entry, wire::Entry& out);
void toWire(const raft::SnapshotMeta& meta, wire::SnapshotMeta& out);
void toWire(const raft::Message& message, wire::RaftMessage& out);
/// Moves the entries' data and the snapshot chunk instead of copying them.
void toWire(raft::Message&& message, wire::RaftMessage& out);

/// A Frame whose body is `message`.
wire::Frame toFrame(const raft::Message& message);
wire::Frame toFrame(raft::Message&& message);

std::optional<raft::Entry> fromWire(const wire::Entry& entry, std::string* error = nullptr);
std::optional<raft::SnapshotMeta> fromWire(const wire::SnapshotMeta& meta,
                                           std::string* error = nullptr);
std::optional<raft::Message> fromWire(const wire::RaftMessage& message,
                                      std::string* error = nullptr);
/// Moves the entries' data and the snapshot chunk out of `message`.
std::optional<raft::Message> fromWire(wire::RaftMessage&& message, std::string* error = nullptr);

/// Enum mappings. The wire values are not the core's numeric values: every
/// wire enum reserves 0 for "unspecified". Out-of-range or unspecified wire
/// values map to nothing.
wire::RaftMessageType toWire(raft::MessageType type);
std::optional<raft::MessageType> fromWire(wire::RaftMessageType type);
wire::EntryType toWire(raft::EntryType type);
std::optional<raft::EntryType> fromWire(wire::EntryType type);
wire::ConfigChangeKind toWire(raft::ConfigChange::Kind kind);
std::optional<raft::ConfigChange::Kind> fromWire(wire::ConfigChangeKind kind);
/// For StatusReply.role.
wire::Role toWire(raft::Role role);
std::optional<raft::Role> fromWire(wire::Role role);

}  // namespace copycat::protocol
