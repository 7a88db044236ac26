#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeindex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/api/commit.h"
#include "engine/api/operation.h"
#include "engine/api/result.h"
#include "engine/api/serializer.h"
#include "engine/api/snapshot.h"

namespace copycat {

/// Identifies a callback scheduled on log time.
using TimerId = std::uint64_t;

namespace detail {
template <class T>
struct MemberClass;
template <class M, class C>
struct MemberClass<M C::*> {
  using type = C;
};
}  // namespace detail

/// The replicated object. A user subclasses it and, in the constructor,
/// registers one handler per operation type:
///
///     on<PutCommand>(&MapStateMachine::put);   // R put(Commit<PutCommand>&)
///     on<GetQuery>([this](const Commit<GetQuery>& c) { ... });
///
/// A handler returns Op::Result; an exception it throws becomes an
/// ApplicationError result for that operation only (state changes made before
/// the throw stay, identically on every replica). Handlers must be
/// deterministic: use Commit::time() / time(), never the local clock or
/// randomness. A state machine that can be snapshotted also derives from
/// Snapshottable.
///
/// The framework side (the public non-const functions below) is called by
/// the server's executor, from one thread, in log order. The state machine is
/// not thread-safe and is neither copied nor moved.
class StateMachine {
 public:
  StateMachine(const StateMachine&) = delete;
  StateMachine& operator=(const StateMachine&) = delete;
  virtual ~StateMachine() = default;

  // --- Framework side -----------------------------------------------------

  /// Applies the operation of a committed log entry: decodes `bytes` as the
  /// type registered under `typeId`, runs its handler and returns the encoded
  /// result. `index` must be above lastIndex() (IllegalState otherwise, and
  /// nothing happens); the entry then counts as applied whatever the outcome,
  /// exactly as tick() would: lastIndex() becomes `index`, time() becomes
  /// max(time(), `time`) and the callbacks due by then run before the handler.
  /// A query type is accepted too (a read through the log): it runs read-only
  /// at this index. Errors: UnknownOperation, MalformedOperation,
  /// ApplicationError, InternalError (result encoding), IllegalState. Never
  /// throws; every replica returns the same outcome for the same entry.
  Expected<std::string> applyCommand(const Serializer& serializer, Index index, LogTime time,
                                     SessionId session, TypeId typeId, std::string_view bytes);

  /// Serves a query outside the log, at read index `index` with the current
  /// time(); changes neither, and runs no callbacks. IllegalState for a
  /// command type (commands go through the log); otherwise the errors of
  /// applyCommand. Never throws.
  Expected<std::string> applyQuery(const Serializer& serializer, Index index, SessionId session,
                                   TypeId typeId, std::string_view bytes);

  /// A log entry that carries no operation (leader no-op, session register or
  /// keep-alive, membership change): advances the index and time and runs the
  /// callbacks that became due. IllegalState when `index` is not increasing.
  Status tick(Index index, LogTime time);

  /// Last applied log index (commands and ticks) and current log time.
  Index lastIndex() const { return m_index; }
  LogTime time() const { return m_time; }

  /// Drains the session events published since the last call, in order.
  std::vector<SessionEvent> takeEvents();

  /// Drains the exceptions thrown by scheduled callbacks (ApplicationError,
  /// message naming the timer). A throwing callback is not retried.
  std::vector<Error> takeCallbackErrors();

  /// Whether this state machine derives from Snapshottable.
  bool snapshottable() const;

  /// Captures lastIndex(), time() and the user state (Snapshottable::snapshot).
  /// IllegalState when not snapshottable, InternalError when snapshot()
  /// throws.
  Expected<std::string> takeSnapshot() const;

  /// Replaces the state with a snapshot from takeSnapshot() on any replica:
  /// restores lastIndex() and time(), cancels pending callbacks and calls
  /// Snapshottable::install. MalformedSnapshot on bad bytes or when install()
  /// throws or leaves bytes unread; the state is then unspecified and the
  /// server must not keep applying to it.
  Status installSnapshot(std::string_view bytes);

  /// Whether a handler is registered for `type`.
  bool handles(std::type_index type) const { return m_handlers.count(type) != 0; }

  /// Names of the operation types this machine handles that `serializer`
  /// does not know: a server refuses to start with a non-empty list.
  std::vector<std::string> missingRegistrations(const Serializer& serializer) const;

  /// Number of pending scheduled callbacks.
  std::size_t pendingCallbacks() const { return m_timers.size(); }

 protected:
  StateMachine() = default;

  /// Registers the handler of `Op`: a member function of the derived class
  /// taking `Commit<Op>&` or `const Commit<Op>&` (const member functions
  /// too), or any callable accepting a `Commit<Op>&`. Its return value must
  /// convert to Op::Result. One handler per type; a second throws
  /// std::logic_error.
  template <Operation Op, class F>
  void on(F handler) {
    using Result = typename Op::Result;
    if constexpr (std::is_member_function_pointer_v<F>) {
      using Self = typename detail::MemberClass<F>::type;
      static_assert(std::is_base_of_v<StateMachine, Self>,
                    "on<Op>(&Class::member): Class must derive from StateMachine");
      static_assert(std::is_invocable_r_v<Result, F, Self*, Commit<Op>&>,
                    "handler must take Commit<Op>& and return Op::Result");
      Self* self = static_cast<Self*>(this);
      addHandler<Op>(std::function<Result(Commit<Op>&)>(
          [self, handler](Commit<Op>& commit) -> Result { return (self->*handler)(commit); }));
    } else {
      static_assert(std::is_invocable_r_v<Result, F&, Commit<Op>&>,
                    "handler must take Commit<Op>& and return Op::Result");
      addHandler<Op>(std::function<Result(Commit<Op>&)>(std::move(handler)));
    }
  }

  /// Runs `callback` once, when a later command or tick carries a time at or
  /// past time() + delay; it runs before that command's handler, in deadline
  /// order (ties in scheduling order), and sees time() equal to its deadline.
  /// Allowed while applying a command, in a callback, in install() and in the
  /// constructor; a query that schedules throws std::logic_error.
  TimerId schedule(std::chrono::milliseconds delay, std::function<void()> callback);
  /// Same, at an absolute log time (a past deadline runs at the next command
  /// or tick).
  TimerId scheduleAt(LogTime deadline, std::function<void()> callback);
  /// Runs `callback` at time() + initialDelay and then every `interval`
  /// (which must be positive) until cancelled.
  TimerId scheduleRepeating(std::chrono::milliseconds initialDelay,
                            std::chrono::milliseconds interval, std::function<void()> callback);
  /// Cancels a pending callback (also from inside itself); false when it is
  /// not pending.
  bool cancel(TimerId id);

  /// Publishes an event to any session (for example a waiter other than the
  /// commit's own session). Same rules as Session::publish.
  template <class T>
  void publish(SessionId session, std::string name, const T& value) {
    publishRaw(session, std::move(name), encodeObject(value));
  }
  void publishRaw(SessionId session, std::string name, std::string payload);

 private:
  friend class Session;

  enum class Context : std::uint8_t { Idle, Command, Query, Callback, Install };

  using Handler = std::function<Expected<std::string>(const Serializer&, const AnyOperation&, Index,
                                                      LogTime, Session)>;
  struct HandlerEntry {
    std::string name;
    Handler call;
  };

  struct Timer {
    TimerId id = 0;
    std::chrono::milliseconds interval{0};  // 0: runs once
    std::function<void()> callback;
  };
  using TimerKey = std::pair<LogTime, TimerId>;

  template <Operation Op>
  void addHandler(std::function<typename Op::Result(Commit<Op>&)> fn) {
    const std::type_index type(typeid(Op));
    if (m_handlers.count(type) != 0) {
      throw std::logic_error("a handler for " + typeName(typeid(Op)) + " is already registered");
    }
    Handler call = [fn = std::move(fn)](const Serializer& serializer, const AnyOperation& any,
                                        Index index, LogTime time,
                                        Session session) -> Expected<std::string> {
      Commit<Op> commit(index, time, std::move(session), *any.get<Op>());
      std::optional<typename Op::Result> result;
      try {
        result.emplace(fn(commit));
      } catch (const std::exception& e) {
        return Error{ErrorCode::ApplicationError, e.what()};
      } catch (...) {
        return Error{ErrorCode::ApplicationError,
                     "non-standard exception in the handler of " + typeName(typeid(Op))};
      }
      try {
        return serializer.encodeResult<Op>(*result);
      } catch (const std::exception& e) {
        return Error{ErrorCode::InternalError,
                     "cannot encode the result of " + typeName(typeid(Op)) + ": " + e.what()};
      }
    };
    m_handlers.emplace(type, HandlerEntry{typeName(typeid(Op)), std::move(call)});
  }

  Expected<std::string> dispatch(const Serializer& serializer, const AnyOperation& operation,
                                 Index index, SessionId session, Context context);
  void requireContext(bool allowed, const char* what) const;
  void advanceTo(LogTime time);
  TimerId addTimer(LogTime deadline, std::chrono::milliseconds interval,
                   std::function<void()> callback);

  std::unordered_map<std::type_index, HandlerEntry> m_handlers;
  Index m_index = 0;
  // The size of the last snapshot taken or installed: the next one reserves
  // that much and a little more up front, instead of growing its buffer
  // (copying it and faulting in fresh pages) a dozen times.
  mutable std::size_t m_snapshotBytesHint = 0;
  LogTime m_time{};
  Context m_context = Context::Idle;

  std::map<TimerKey, Timer> m_timers;
  std::unordered_map<TimerId, LogTime> m_timerDeadlines;
  TimerId m_nextTimerId = 1;
  TimerId m_runningTimer = 0;
  bool m_runningTimerCancelled = false;

  std::vector<SessionEvent> m_events;
  std::vector<Error> m_callbackErrors;
};

}  // namespace copycat
