// StateMachine: dispatch by type id, handler errors as values, what a Commit
// carries, deterministic log time, callbacks scheduled on log time, the
// session event outbox and snapshots of the framework state.

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <QTest>

#include "engine/api/serializer.h"
#include "engine/api/state_machine.h"

using namespace copycat;
using namespace std::chrono_literals;

// QTest cannot print enums whose toString() returns string_view: compare names.
#define QCOMPARE_ENUM(actual, expected) QCOMPARE(enumName(actual), enumName(expected))

template <class E>
QString enumName(E value) {
  const std::string_view name = copycat::toString(value);
  return QString::fromUtf8(name.data(), static_cast<qsizetype>(name.size()));
}

namespace {

LogTime at(std::int64_t millis) { return LogTime(std::chrono::milliseconds(millis)); }

struct AddCommand : Command<std::int64_t> {
  std::int64_t amount = 0;
  AddCommand() = default;
  explicit AddCommand(std::int64_t a) : amount(a) {}
  template <class A>
  void serialize(A& a) {
    a(amount);
  }
};

struct ReadQuery : Query<std::int64_t, Consistency::Sequential> {
  template <class A>
  void serialize(A&) {}
};

struct FailCommand : Command<bool> {
  template <class A>
  void serialize(A&) {}
};

struct WhatCommand : Command<bool> {  // throws something that is not a std::exception
  template <class A>
  void serialize(A&) {}
};

// What the handler saw, returned as its result.
struct CommitInfo {
  std::uint64_t index = 0;
  std::int64_t time = 0;
  std::uint64_t session = 0;
  template <class A>
  void serialize(A& a) {
    a(index, time, session);
  }
};

struct InspectCommand : Command<CommitInfo> {
  template <class A>
  void serialize(A&) {}
};

struct InspectQuery : Query<CommitInfo> {
  template <class A>
  void serialize(A&) {}
};

// Schedules `name` to be recorded after `delayMs` (repeating when every > 0).
struct ExpireCommand : Command<std::uint64_t> {
  std::string name;
  std::int64_t delayMs = 0;
  std::int64_t everyMs = 0;
  template <class A>
  void serialize(A& a) {
    a(name, delayMs, everyMs);
  }
};

struct CancelCommand : Command<bool> {
  std::uint64_t timer = 0;
  template <class A>
  void serialize(A& a) {
    a(timer);
  }
};

// Publishes to its own session and, when `other` is set, to another one.
struct NotifyCommand : Command<bool> {
  std::string message;
  std::uint64_t other = 0;
  template <class A>
  void serialize(A& a) {
    a(message, other);
  }
};

struct PublishingQuery : Query<bool> {
  template <class A>
  void serialize(A&) {}
};

struct SchedulingQuery : Query<bool> {
  template <class A>
  void serialize(A&) {}
};

struct UnhandledCommand : Command<bool> {
  template <class A>
  void serialize(A&) {}
};

struct Fired {
  std::string name;
  std::int64_t time = 0;
  std::uint64_t index = 0;
  friend bool operator==(const Fired&, const Fired&) = default;
  template <class A>
  void serialize(A& a) {
    a(name, time, index);
  }
};

class TestMachine : public StateMachine, public Snapshottable {
 public:
  TestMachine() {
    on<AddCommand>(&TestMachine::add);
    on<ReadQuery>(&TestMachine::read);
    on<FailCommand>([this](Commit<FailCommand>&) -> bool {
      counter += 1000;  // stays applied despite the exception
      throw std::runtime_error("boom");
    });
    on<WhatCommand>([](const Commit<WhatCommand>&) -> bool { throw 42; });
    on<InspectCommand>([](const Commit<InspectCommand>& c) { return inspect(c); });
    on<InspectQuery>([](const Commit<InspectQuery>& c) { return inspect(c); });
    on<ExpireCommand>(&TestMachine::expire);
    on<CancelCommand>([this](Commit<CancelCommand>& c) { return cancel(c->timer); });
    on<NotifyCommand>([this](Commit<NotifyCommand>& c) {
      c.session().publish("note", c->message);
      if (c->other != 0) publish(c->other, "forwarded", c->message);
      return true;
    });
    on<PublishingQuery>([](const Commit<PublishingQuery>& c) {
      c.session().publish("nope", 1);
      return true;
    });
    on<SchedulingQuery>([this](const Commit<SchedulingQuery>&) {
      schedule(1ms, [] {});
      return true;
    });
  }

  void snapshot(SnapshotWriter& writer) const override {
    writer.writeObject(counter);
    writer.writeObject(fired);
  }
  void install(SnapshotReader& reader) override {
    counter = reader.readObject<std::int64_t>();
    fired = reader.readObject<std::vector<Fired>>();
  }

  template <class Op>
  static CommitInfo inspect(const Commit<Op>& c) {
    return CommitInfo{c.index(), c.time().time_since_epoch().count(), c.session().id()};
  }

  std::int64_t counter = 0;
  std::vector<Fired> fired;

 private:
  std::int64_t add(Commit<AddCommand>& c) { return counter += c->amount; }
  std::int64_t read(const Commit<ReadQuery>&) const { return counter; }
  std::uint64_t expire(Commit<ExpireCommand>& c) {
    std::string name = c->name;
    auto record = [this, name] {
      fired.push_back(Fired{name, time().time_since_epoch().count(), lastIndex()});
      if (name == "throws") throw std::runtime_error("callback failed");
      if (name == "chain") schedule(5ms, [this] { fired.push_back(Fired{"chained", 0, 0}); });
    };
    if (c->everyMs > 0) {
      return scheduleRepeating(std::chrono::milliseconds(c->delayMs),
                               std::chrono::milliseconds(c->everyMs), record);
    }
    return schedule(std::chrono::milliseconds(c->delayMs), record);
  }
};

Serializer testSerializer() {
  Serializer s;
  s.registerType<AddCommand>(1);
  s.registerType<ReadQuery>(2);
  s.registerType<FailCommand>(3);
  s.registerType<WhatCommand>(4);
  s.registerType<InspectCommand>(5);
  s.registerType<InspectQuery>(6);
  s.registerType<ExpireCommand>(7);
  s.registerType<CancelCommand>(8);
  s.registerType<NotifyCommand>(9);
  s.registerType<PublishingQuery>(10);
  s.registerType<SchedulingQuery>(11);
  s.registerType<UnhandledCommand>(12);
  return s;
}

// Drives a machine the way the server's executor does.
struct Driver {
  Serializer serializer = testSerializer();
  TestMachine machine;

  template <class Op>
  Expected<typename Op::Result> command(Index index, std::int64_t time, const Op& op,
                                        SessionId session = 1) {
    const auto encoded = serializer.encode(op);
    auto bytes =
        machine.applyCommand(serializer, index, at(time), session, encoded.typeId, encoded.bytes);
    if (!bytes) return bytes.error();
    return serializer.decodeResult<Op>(*bytes);
  }
  template <class Op>
  Expected<typename Op::Result> query(Index index, const Op& op, SessionId session = 1) {
    const auto encoded = serializer.encode(op);
    auto bytes = machine.applyQuery(serializer, index, session, encoded.typeId, encoded.bytes);
    if (!bytes) return bytes.error();
    return serializer.decodeResult<Op>(*bytes);
  }
};

ExpireCommand expireIn(std::string name, std::int64_t delayMs, std::int64_t everyMs = 0) {
  ExpireCommand c;
  c.name = std::move(name);
  c.delayMs = delayMs;
  c.everyMs = everyMs;
  return c;
}

}  // namespace

class ApiStateMachineTest : public QObject {
  Q_OBJECT

 private slots:
  void dispatchesByTypeId() {
    Driver d;
    QCOMPARE(*d.command(1, 10, AddCommand(5)), std::int64_t(5));
    QCOMPARE(*d.command(2, 11, AddCommand(-2)), std::int64_t(3));
    QCOMPARE(*d.query(2, ReadQuery{}), std::int64_t(3));
    QCOMPARE(d.machine.lastIndex(), Index(2));
    QVERIFY(d.machine.missingRegistrations(d.serializer).empty());
    QVERIFY(d.machine.handles(typeid(AddCommand)));
    QVERIFY(!d.machine.handles(typeid(UnhandledCommand)));
  }

  void missingRegistrationsAreNamed() {
    TestMachine machine;
    Serializer partial;
    partial.registerType<AddCommand>(1);
    const auto missing = machine.missingRegistrations(partial);
    QCOMPARE(missing.size(), std::size_t(10));
    QVERIFY(std::find(missing.begin(), missing.end(), "(anonymous namespace)::ReadQuery") !=
            missing.end());
  }

  void unknownOperationsAreErrorValues() {
    Driver d;
    auto unknownId = d.machine.applyCommand(d.serializer, 1, at(1), 1, 999, "\x01");
    QCOMPARE_ENUM(unknownId.error().code, ErrorCode::UnknownOperation);
    QCOMPARE(d.machine.lastIndex(), Index(1));  // the entry is consumed all the same

    const auto unhandled = d.command(2, 2, UnhandledCommand{});
    QCOMPARE_ENUM(unhandled.error().code, ErrorCode::UnknownOperation);
    QVERIFY(unhandled.error().message.find("UnhandledCommand") != std::string::npos);

    auto malformed = d.machine.applyCommand(d.serializer, 3, at(3), 1, 1, "\x01\x02");
    QCOMPARE_ENUM(malformed.error().code, ErrorCode::MalformedOperation);
    auto malformedQuery = d.machine.applyQuery(d.serializer, 3, 1, 2, "");
    QCOMPARE_ENUM(malformedQuery.error().code, ErrorCode::MalformedOperation);
    QCOMPARE(d.machine.lastIndex(), Index(3));
    QCOMPARE(d.machine.counter, std::int64_t(0));
  }

  void handlerExceptionsBecomeApplicationErrors() {
    Driver d;
    const auto failed = d.command(1, 1, FailCommand{});
    QVERIFY(!failed.ok());
    QCOMPARE_ENUM(failed.error().code, ErrorCode::ApplicationError);
    QCOMPARE(failed.error().message, std::string("boom"));
    QCOMPARE(d.machine.counter, std::int64_t(1000));
    const auto odd = d.command(2, 2, WhatCommand{});
    QCOMPARE_ENUM(odd.error().code, ErrorCode::ApplicationError);
    QVERIFY(odd.error().message.find("WhatCommand") != std::string::npos);
    QCOMPARE(*d.command(3, 3, AddCommand(1)), std::int64_t(1001));  // still serving
  }

  void commandIndexMustIncrease() {
    Driver d;
    QVERIFY(d.command(5, 1, AddCommand(1)).ok());
    const auto again = d.command(5, 2, AddCommand(1));
    QCOMPARE_ENUM(again.error().code, ErrorCode::IllegalState);
    QCOMPARE_ENUM(d.command(4, 2, AddCommand(1)).error().code, ErrorCode::IllegalState);
    QCOMPARE_ENUM(d.machine.tick(5, at(3)).error().code, ErrorCode::IllegalState);
    QCOMPARE(d.machine.counter, std::int64_t(1));
    QVERIFY(d.machine.tick(6, at(3)).ok());
    QCOMPARE(d.machine.lastIndex(), Index(6));
  }

  void commandsGoThroughTheLogOnly() {
    Driver d;
    const auto result = d.query(1, AddCommand(1));
    QCOMPARE_ENUM(result.error().code, ErrorCode::IllegalState);
    QCOMPARE(d.machine.counter, std::int64_t(0));
    // A query may go through the log, at that entry's index and time.
    const auto logged = d.command(7, 70, InspectQuery{}, 3);
    QCOMPARE(logged->index, std::uint64_t(7));
    QCOMPARE(logged->time, std::int64_t(70));
  }

  void commitsCarryIndexTimeAndSession() {
    Driver d;
    const auto c = d.command(3, 1000, InspectCommand{}, 42);
    QVERIFY(c.ok());
    QCOMPARE(c->index, std::uint64_t(3));
    QCOMPARE(c->time, std::int64_t(1000));
    QCOMPARE(c->session, std::uint64_t(42));
    // A query reads at the index it is given, with the machine's current time.
    const auto q = d.query(3, InspectQuery{}, 7);
    QCOMPARE(q->index, std::uint64_t(3));
    QCOMPARE(q->time, std::int64_t(1000));
    QCOMPARE(q->session, std::uint64_t(7));
  }

  void timeNeverGoesBackwards() {
    Driver d;
    QCOMPARE(d.command(1, 500, InspectCommand{})->time, std::int64_t(500));
    QCOMPARE(d.command(2, 400, InspectCommand{})->time, std::int64_t(500));  // clock skew
    QVERIFY(d.machine.tick(3, at(100)).ok());
    QCOMPARE(d.machine.time(), at(500));
    QCOMPARE(d.command(4, 600, InspectCommand{})->time, std::int64_t(600));
    QCOMPARE(d.query(4, InspectQuery{})->time, std::int64_t(600));
  }

  void callbacksFireInLogTime() {
    Driver d;
    QVERIFY(d.command(1, 1000, expireIn("b", 200)).ok());  // deadline 1200
    QVERIFY(d.command(2, 1000, expireIn("a", 100)).ok());  // deadline 1100
    QVERIFY(d.command(3, 1050, expireIn("c", 150)).ok());  // deadline 1200, after b
    QCOMPARE(d.machine.pendingCallbacks(), std::size_t(3));
    QVERIFY(d.command(4, 1099, AddCommand(1)).ok());
    QVERIFY(d.machine.fired.empty());
    // A query never runs callbacks, whatever the wall clock says.
    QVERIFY(d.query(4, ReadQuery{}).ok());
    QVERIFY(d.machine.fired.empty());

    QVERIFY(d.command(5, 1300, InspectCommand{}).ok());
    const std::vector<Fired> expected{{"a", 1100, 5}, {"b", 1200, 5}, {"c", 1200, 5}};
    QCOMPARE(d.machine.fired, expected);
    QCOMPARE(d.machine.pendingCallbacks(), std::size_t(0));
    QCOMPARE(d.machine.time(), at(1300));
  }

  void callbacksRunBeforeTheCommandThatPassesTheirDeadline() {
    Driver d;
    QVERIFY(d.command(1, 0, expireIn("t", 10)).ok());
    const auto seen = d.command(2, 10, InspectCommand{});
    QCOMPARE(seen->time, std::int64_t(10));
    QCOMPARE(d.machine.fired.size(), std::size_t(1));
    QCOMPARE(d.machine.fired[0].index, std::uint64_t(2));
  }

  void ticksAdvanceTimeToo() {
    Driver d;
    QVERIFY(d.command(1, 0, expireIn("t", 10)).ok());
    QVERIFY(d.machine.tick(2, at(9)).ok());
    QVERIFY(d.machine.fired.empty());
    QVERIFY(d.machine.tick(3, at(25)).ok());
    QCOMPARE(d.machine.fired, (std::vector<Fired>{{"t", 10, 3}}));
  }

  void repeatingCallbacksAndCancel() {
    Driver d;
    const auto id = d.command(1, 0, expireIn("r", 10, 5));
    QVERIFY(id.ok());
    QVERIFY(d.machine.tick(2, at(22)).ok());
    QCOMPARE(d.machine.fired, (std::vector<Fired>{{"r", 10, 2}, {"r", 15, 2}, {"r", 20, 2}}));
    QCOMPARE(*d.command(3, 23, CancelCommand{{}, *id}), true);
    QCOMPARE(*d.command(4, 24, CancelCommand{{}, *id}), false);
    QVERIFY(d.machine.tick(5, at(100)).ok());
    QCOMPARE(d.machine.fired.size(), std::size_t(3));
  }

  void callbacksMayScheduleAndFailAlone() {
    Driver d;
    QVERIFY(d.command(1, 0, expireIn("chain", 10)).ok());
    QVERIFY(d.command(2, 0, expireIn("throws", 12)).ok());
    QVERIFY(d.machine.tick(3, at(100)).ok());  // chain at 10, throws at 12, chained at 15
    QCOMPARE(d.machine.fired,
             (std::vector<Fired>{{"chain", 10, 3}, {"throws", 12, 3}, {"chained", 0, 0}}));
    const auto errors = d.machine.takeCallbackErrors();
    QCOMPARE(errors.size(), std::size_t(1));
    QCOMPARE_ENUM(errors[0].code, ErrorCode::ApplicationError);
    QVERIFY(errors[0].message.find("callback failed") != std::string::npos);
    QVERIFY(d.machine.takeCallbackErrors().empty());
  }

  // Two replicas fed the same entries with arbitrary leader timestamps end in
  // the same state, callbacks included.
  void replicasAgree() {
    Driver a;
    Driver b;
    std::int64_t leaderClock = 0;
    std::uint64_t seed = 7;
    for (Index i = 1; i <= 300; ++i) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      leaderClock += static_cast<std::int64_t>(seed >> 60) - 3;  // sometimes backwards
      if (i % 3 == 0) {
        const auto op = expireIn("e" + std::to_string(i), static_cast<std::int64_t>(seed % 40));
        QVERIFY(a.command(i, leaderClock, op).ok());
        QVERIFY(b.command(i, leaderClock, op).ok());
      } else {
        QVERIFY(a.machine.tick(i, at(leaderClock)).ok());
        QVERIFY(b.machine.tick(i, at(leaderClock)).ok());
      }
    }
    QVERIFY(!a.machine.fired.empty());
    QCOMPARE(a.machine.fired, b.machine.fired);
    for (std::size_t k = 1; k < a.machine.fired.size(); ++k) {
      QVERIFY(a.machine.fired[k - 1].time <= a.machine.fired[k].time);
    }
  }

  void sessionEventsAreCollectedInOrder() {
    Driver d;
    QVERIFY(d.command(1, 0, NotifyCommand{{}, "hello", 0}, 5).ok());
    QVERIFY(d.command(2, 0, NotifyCommand{{}, "both", 9}, 5).ok());
    const auto events = d.machine.takeEvents();
    QCOMPARE(events.size(), std::size_t(3));
    QCOMPARE(events[0].session, SessionId(5));
    QCOMPARE(events[0].index, Index(1));
    QCOMPARE(events[0].name, std::string("note"));
    QCOMPARE(decodeObject<std::string>(events[0].payload), std::string("hello"));
    QCOMPARE(events[1].session, SessionId(5));
    QCOMPARE(events[2].session, SessionId(9));
    QCOMPARE(events[2].name, std::string("forwarded"));
    QCOMPARE(events[2].index, Index(2));
    QVERIFY(d.machine.takeEvents().empty());
  }

  void queriesMayNeitherPublishNorSchedule() {
    Driver d;
    const auto published = d.query(0, PublishingQuery{});
    QCOMPARE_ENUM(published.error().code, ErrorCode::ApplicationError);
    QVERIFY(published.error().message.find("query") != std::string::npos);
    QCOMPARE_ENUM(d.query(0, SchedulingQuery{}).error().code, ErrorCode::ApplicationError);
    QVERIFY(d.machine.takeEvents().empty());
    QCOMPARE(d.machine.pendingCallbacks(), std::size_t(0));
    QVERIFY_THROWS_EXCEPTION(std::logic_error, Session(3).publish("x", 1));
  }

  void snapshotCarriesIndexAndTime() {
    Driver a;
    QVERIFY(a.command(1, 100, AddCommand(7)).ok());
    QVERIFY(a.command(2, 150, expireIn("x", 10)).ok());
    QVERIFY(a.machine.tick(3, at(200)).ok());
    const auto snapshot = a.machine.takeSnapshot();
    QVERIFY(snapshot.ok());

    Driver b;
    QVERIFY(b.machine.installSnapshot(*snapshot).ok());
    QCOMPARE(b.machine.lastIndex(), Index(3));
    QCOMPARE(b.machine.time(), at(200));
    QCOMPARE(b.machine.counter, std::int64_t(7));
    QCOMPARE(b.machine.fired, a.machine.fired);
    QCOMPARE(b.command(4, 250, InspectCommand{})->time, std::int64_t(250));
    QCOMPARE(b.command(5, 10, InspectCommand{})->time, std::int64_t(250));
  }

  void badSnapshotsAreErrors() {
    Driver a;
    QVERIFY(a.command(1, 100, AddCommand(7)).ok());
    const std::string snapshot = *a.machine.takeSnapshot();
    for (std::size_t n = 0; n < snapshot.size(); ++n) {
      Driver b;
      const auto status = b.machine.installSnapshot(std::string_view(snapshot).substr(0, n));
      QVERIFY(!status.ok());
      QCOMPARE_ENUM(status.error().code, ErrorCode::MalformedSnapshot);
    }
    Driver c;
    QCOMPARE_ENUM(c.machine.installSnapshot(snapshot + "x").error().code,
                  ErrorCode::MalformedSnapshot);
    std::string otherFormat = snapshot;
    otherFormat[1] = 9;
    QCOMPARE_ENUM(c.machine.installSnapshot(otherFormat).error().code,
                  ErrorCode::MalformedSnapshot);
  }

  void installCancelsPendingCallbacks() {
    Driver a;
    QVERIFY(a.machine.tick(1, at(0)).ok());
    const std::string snapshot = *a.machine.takeSnapshot();
    Driver b;
    QVERIFY(b.command(1, 0, expireIn("stale", 10)).ok());
    QVERIFY(b.machine.installSnapshot(snapshot).ok());
    QCOMPARE(b.machine.pendingCallbacks(), std::size_t(0));
  }

  void notSnapshottable() {
    class Plain : public StateMachine {};
    Plain plain;
    QVERIFY(!plain.snapshottable());
    QCOMPARE_ENUM(plain.takeSnapshot().error().code, ErrorCode::IllegalState);
    QCOMPARE_ENUM(plain.installSnapshot("\x01").error().code, ErrorCode::IllegalState);
    TestMachine machine;
    QVERIFY(machine.snapshottable());
  }

  void duplicateHandlersAreRefused() {
    class Twice : public StateMachine {
     public:
      Twice() {
        on<AddCommand>([](Commit<AddCommand>&) { return std::int64_t(0); });
        on<AddCommand>([](Commit<AddCommand>&) { return std::int64_t(1); });
      }
    };
    QVERIFY_THROWS_EXCEPTION(std::logic_error, Twice());
  }
};

QTEST_APPLESS_MAIN(ApiStateMachineTest)
#include "api_state_machine_test.moc"
