// MapStateMachine: every operation through the serializer, cas semantics, and
// a snapshot installed into a fresh machine reproducing the same map.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <QTest>

#include "engine/kv/map_state_machine.h"

using namespace copycat;
using namespace copycat::kv;

// QTest cannot print enums whose toString() returns string_view: compare names.
#define QCOMPARE_ENUM(actual, expected) QCOMPARE(enumName(actual), enumName(expected))

template <class E>
QString enumName(E value) {
  const std::string_view name = copycat::toString(value);
  return QString::fromUtf8(name.data(), static_cast<qsizetype>(name.size()));
}

namespace {

using Value = std::optional<std::string>;

// Applies operations to one machine as the server's executor would.
struct Replica {
  Serializer serializer;
  MapStateMachine machine;
  Index index = 0;

  Replica() { registerKvOperations(serializer); }

  template <class Op>
  typename Op::Result run(const Op& op) {
    const auto encoded = serializer.encode(op);
    if (CommandType<Op>) ++index;
    Expected<std::string> bytes =
        CommandType<Op>
            ? machine.applyCommand(serializer, index, LogTime(std::chrono::milliseconds(index)), 1,
                                   encoded.typeId, encoded.bytes)
            : machine.applyQuery(serializer, index, 1, encoded.typeId, encoded.bytes);
    if (!bytes) throw BadExpectedAccess(bytes.error());
    return serializer.decodeResult<Op>(*bytes).value();
  }
};

}  // namespace

class KvMapTest : public QObject {
  Q_OBJECT

 private slots:
  void putAndGet() {
    Replica r;
    QCOMPARE(r.run(GetQuery("a")), Value());
    QCOMPARE(r.run(PutCommand("a", "1")), Value());
    QCOMPARE(r.run(GetQuery("a")), Value("1"));
    QCOMPARE(r.run(PutCommand("a", "2")), Value("1"));
    QCOMPARE(r.run(GetQuery("a")), Value("2"));
    QCOMPARE(r.run(PutCommand("", "")), Value());  // empty key and value are fine
    QCOMPARE(r.run(GetQuery("")), Value(""));
  }

  void remove() {
    Replica r;
    QCOMPARE(r.run(RemoveCommand("a")), Value());
    r.run(PutCommand("a", "1"));
    QCOMPARE(r.run(RemoveCommand("a")), Value("1"));
    QCOMPARE(r.run(GetQuery("a")), Value());
    QCOMPARE(r.run(SizeQuery{}), std::uint64_t(0));
  }

  void sizeAndKeys() {
    Replica r;
    QCOMPARE(r.run(SizeQuery{}), std::uint64_t(0));
    QCOMPARE(r.run(KeysQuery{}), std::vector<std::string>());
    r.run(PutCommand("b", "2"));
    r.run(PutCommand("a", "1"));
    r.run(PutCommand("c", "3"));
    r.run(PutCommand("a", "again"));
    QCOMPARE(r.run(SizeQuery{}), std::uint64_t(3));
    QCOMPARE(r.run(KeysQuery{}), (std::vector<std::string>{"a", "b", "c"}));
  }

  void casSemantics() {
    Replica r;
    // Expecting a value of an absent key fails; expecting absence succeeds once.
    QCOMPARE(r.run(CasCommand("k", std::string("x"), "1")), false);
    QCOMPARE(r.run(GetQuery("k")), Value());
    QCOMPARE(r.run(CasCommand("k", std::nullopt, "1")), true);
    QCOMPARE(r.run(CasCommand("k", std::nullopt, "2")), false);
    QCOMPARE(r.run(GetQuery("k")), Value("1"));
    // Wrong expectation leaves the value; the right one swaps it.
    QCOMPARE(r.run(CasCommand("k", std::string("0"), "2")), false);
    QCOMPARE(r.run(GetQuery("k")), Value("1"));
    QCOMPARE(r.run(CasCommand("k", std::string("1"), "2")), true);
    QCOMPARE(r.run(GetQuery("k")), Value("2"));
    // The empty string is a value, not absence.
    r.run(PutCommand("e", ""));
    QCOMPARE(r.run(CasCommand("e", std::nullopt, "x")), false);
    QCOMPARE(r.run(CasCommand("e", std::string(""), "x")), true);
    QCOMPARE(r.run(GetQuery("e")), Value("x"));
  }

  void queriesDefaultToLinearizable() {
    Replica r;
    QCOMPARE_ENUM(r.serializer.info(*r.serializer.typeIdOf<GetQuery>())->defaultConsistency,
                  Consistency::Linearizable);
    QVERIFY(r.machine.missingRegistrations(r.serializer).empty());
  }

  void snapshotInstallsIntoAFreshMachine() {
    Replica r;
    for (int i = 0; i < 200; ++i) {
      r.run(PutCommand("key" + std::to_string(i), std::string(static_cast<std::size_t>(i), 'v')));
    }
    r.run(RemoveCommand("key7"));
    r.run(CasCommand("key8", std::string(8, 'v'), "swapped"));
    const auto snapshot = r.machine.takeSnapshot();
    QVERIFY(snapshot.ok());

    Replica fresh;
    QVERIFY(fresh.machine.installSnapshot(*snapshot).ok());
    QCOMPARE(fresh.machine.data(), r.machine.data());
    QCOMPARE(fresh.machine.lastIndex(), r.machine.lastIndex());
    QCOMPARE(fresh.machine.time(), r.machine.time());
    fresh.index = fresh.machine.lastIndex();
    QCOMPARE(fresh.run(GetQuery("key8")), Value("swapped"));
    QCOMPARE(fresh.run(SizeQuery{}), std::uint64_t(199));

    // Installing over existing state replaces it entirely.
    Replica used;
    used.run(PutCommand("stale", "x"));
    QVERIFY(used.machine.installSnapshot(*snapshot).ok());
    QCOMPARE(used.machine.data(), r.machine.data());
  }

  void emptySnapshot() {
    Replica r;
    const auto snapshot = r.machine.takeSnapshot();
    Replica fresh;
    fresh.run(PutCommand("a", "1"));
    QVERIFY(fresh.machine.installSnapshot(*snapshot).ok());
    QVERIFY(fresh.machine.data().empty());
  }
};

QTEST_APPLESS_MAIN(KvMapTest)
#include "kv_map_test.moc"
