#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace copycat {

/// Position of an entry in the replicated log (1-based; 0 means "none").
using Index = std::uint64_t;

/// A client session, registered through the log. 0 means "no session".
using SessionId = std::uint64_t;

/// Deterministic state machine time: the leader's wall-clock timestamp carried
/// in each log entry, clamped so that it never goes backwards. Every replica
/// sees the same value for the same entry; never read the local clock in a
/// state machine.
using LogTime = std::chrono::sys_time<std::chrono::milliseconds>;

/// How fresh a query's answer must be.
enum class Consistency : std::uint8_t {
  Linearizable,       // the leader confirms leadership with a quorum (ReadIndex)
  LinearizableLease,  // the leader relies on its lease: no round trip, bounded clock drift
  Sequential,         // any member; never older than what this client has already seen
};

std::string_view toString(Consistency consistency);

enum class OperationKind : std::uint8_t { Command, Query };

std::string_view toString(OperationKind kind);

struct CommandTag {
  friend bool operator==(const CommandTag&, const CommandTag&) = default;
};
struct QueryTag {
  friend bool operator==(const QueryTag&, const QueryTag&) = default;
};

/// Base of every operation that changes state. `R` is what the handler
/// returns and the client's future yields; it must be serializable by the
/// Serializer (cereal by default). Commands go through the log and run on
/// every replica, in log order, exactly once per client submission.
template <class R>
struct Command : CommandTag {
  static_assert(!std::is_void_v<R>, "a command returns a value (bool, an empty struct...)");
  using Result = R;
  friend bool operator==(const Command&, const Command&) = default;
};

/// Base of every read-only operation. Queries are not logged; they run on one
/// server at the consistency level `C` unless the client overrides it per
/// call. A derived type may also redeclare `defaultConsistency`.
template <class R, Consistency C = Consistency::Linearizable>
struct Query : QueryTag {
  static_assert(!std::is_void_v<R>, "a query returns a value");
  using Result = R;
  static constexpr Consistency defaultConsistency = C;
  friend bool operator==(const Query&, const Query&) = default;
};

template <class Op>
concept CommandType =
    std::derived_from<Op, CommandTag> && !std::derived_from<Op, QueryTag> && requires {
  typename Op::Result;
};

template <class Op>
concept QueryType =
    std::derived_from<Op, QueryTag> && !std::derived_from<Op, CommandTag> && requires {
  typename Op::Result;
  { Op::defaultConsistency } -> std::convertible_to<Consistency>;
};

/// A user operation: derives from exactly one of Command<R> or Query<R>.
template <class Op>
concept Operation = CommandType<Op> || QueryType<Op>;

template <Operation Op>
inline constexpr OperationKind kindOf =
    CommandType<Op> ? OperationKind::Command : OperationKind::Query;

template <Operation Op>
constexpr Consistency defaultConsistencyOf() {
  if constexpr (QueryType<Op>) {
    return Op::defaultConsistency;
  } else {
    return Consistency::Linearizable;
  }
}

}  // namespace copycat
