#pragma once

// QTest::toString overloads (found by argument-dependent lookup) so that
// QCOMPARE failures on core types print readable values.

#include <QTest>

#include <string>
#include <vector>

#include "engine/raft/node.h"
#include "engine/raft/types.h"

/// QCOMPARE for the core's enums (Role, ProposeResult, MessageType): their
/// toString() overloads return string_view, which QTest cannot print, so
/// compare their names.
#define QCOMPARE_ENUM(actual, expected)                                        \
  QCOMPARE(::copycat::raft::enumName(actual), ::copycat::raft::enumName(expected))

namespace copycat::raft {

template <typename E>
QString enumName(E value) {
  const std::string_view name = toString(value);
  return QString::fromUtf8(name.data(), static_cast<qsizetype>(name.size()));
}

}  // namespace copycat::raft

namespace copycat::raft {

inline std::string describeIds(const std::vector<NodeId>& ids) {
  std::string out = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
  return out + "}";
}

inline char* toString(const Membership& membership) {
  return qstrdup(("voters " + describeIds(membership.voters) + " learners " + describeIds(membership.learners)).c_str());
}
inline char* toString(const HardState& state) {
  return qstrdup(("term " + std::to_string(state.term) + " vote " + std::to_string(state.vote) + " commit " +
                  std::to_string(state.commit))
                     .c_str());
}
inline char* toString(const std::vector<Entry>& entries) {
  std::string out = std::to_string(entries.size()) + " entries [";
  for (std::size_t i = 0; i < entries.size() && i < 40; ++i) {
    out += (i ? " " : "") + std::to_string(entries[i].index) + "/" + std::to_string(entries[i].term);
  }
  if (entries.size() > 40) out += " ...";
  return qstrdup((out + "]").c_str());
}

}  // namespace copycat::raft
