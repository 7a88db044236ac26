// The replicated session table (engine/server/session_table.h): admission of
// command sequence numbers, cached responses until acknowledged, expiry by
// log time, event numbering, its snapshot round trip with validation, and
// the executor forgetting what commands acknowledge.

#include "engine/server/session_table.h"

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include <QtTest>

#include "engine/kv/map_state_machine.h"
#include "engine/server/server_log.pb.h"
#include "engine/server/state_machine_executor.h"

using copycat::Error;
using copycat::ErrorCode;
using copycat::server::Outcome;
using copycat::server::SessionTable;
using Admission = SessionTable::Admission;

namespace {

Outcome result(std::string value, copycat::Index index) {
  Outcome outcome;
  outcome.result = std::move(value);
  outcome.index = index;
  return outcome;
}

/// Session 1 (timeout 1000 ms, last active at 10) with commands 1..3
/// applied and their responses kept.
SessionTable withThreeResponses() {
  SessionTable table;
  table.open(1, "c", 1000, 0);
  for (std::uint64_t sequence = 1; sequence <= 3; ++sequence) {
    if (table.admit(1, sequence, 10) != Admission::Apply)
      qFatal("command %d not admitted", int(sequence));
    table.record(1, sequence, result(std::to_string(sequence), sequence + 1));
  }
  return table;
}

}  // namespace

class SessionTableTest : public QObject {
  Q_OBJECT

 private slots:
  void admitsSequenceNumbersOnce() {
    SessionTable table;
    table.open(7, "client", 1000, 100);
    QCOMPARE(table.admit(7, 1, 110), Admission::Apply);
    table.record(7, 1, result("first", 8));
    QCOMPARE(table.admit(7, 3, 120), Admission::Gap);
    Outcome cached;
    QCOMPARE(table.admit(7, 1, 130, &cached), Admission::Duplicate);
    QVERIFY(cached.result.ok());
    QCOMPARE(*cached.result, std::string("first"));
    QCOMPARE(cached.index, copycat::Index{8});
    QCOMPARE(table.admit(7, 2, 140), Admission::Apply);
    table.record(7, 2, result("second", 9));
    QCOMPARE(table.sequenceOf(7), std::uint64_t{2});
    QCOMPARE(table.admit(8, 1, 150), Admission::Unknown);
  }

  void acknowledgedResponsesAreForgotten() {
    SessionTable table = withThreeResponses();
    QVERIFY(table.keepAlive(1, 2, 0, 20));
    QCOMPARE(table.admit(1, 2, 30), Admission::Forgotten);
    QCOMPARE(table.admit(1, 3, 30), Admission::Duplicate);
    QVERIFY(!table.keepAlive(99, 0, 0, 30));
  }

  // A command's acknowledgement forgets responses like a keep-alive but does
  // not count as activity of the session.
  void acknowledgingForgetsWithoutRefreshing() {
    SessionTable table = withThreeResponses();
    table.acknowledge(1, 2);
    table.acknowledge(99, 5);  // unknown: ignored
    QCOMPARE(table.admit(1, 1, 10), Admission::Forgotten);
    QCOMPARE(table.admit(1, 2, 10), Admission::Forgotten);
    QCOMPARE(table.admit(1, 3, 10), Admission::Duplicate);
    table.acknowledge(1, 3);
    QCOMPARE(table.admit(1, 3, 10), Admission::Forgotten);
    QCOMPARE(table.expire(1011), std::vector<copycat::SessionId>{1});
  }

  // The executor applies the acknowledgement a command carries before
  // admitting it: a resent command whose result the client acknowledged is
  // refused as forgotten, one it did not acknowledge gets its first result.
  void executorForgetsWhatCommandsAcknowledge() {
    using copycat::raft::Entry;
    auto serializer = std::make_shared<copycat::Serializer>();
    copycat::kv::registerKvOperations(*serializer);
    copycat::server::StateMachineExecutor executor(std::make_unique<copycat::kv::MapStateMachine>(),
                                                   serializer, 0, {});
    executor.start();
    std::mutex mutex;
    std::map<copycat::Index, Outcome> outcomes;
    const auto enqueue = [&](copycat::Index index, std::string data) {
      executor.enqueueWaiter(index, 1, [&mutex, &outcomes, index](Outcome outcome) {
        std::lock_guard lock(mutex);
        outcomes.emplace(index, std::move(outcome));
      });
      std::vector<Entry> entries;
      entries.push_back(Entry{1, index, copycat::raft::EntryType::Normal, {}, std::move(data)});
      executor.enqueueEntries(std::move(entries));
    };
    copycat::serverlog::LogEntry registration;
    registration.set_timestamp_ms(1000);
    registration.mutable_register_session()->set_client_id("c");
    registration.mutable_register_session()->set_timeout_ms(60000);
    enqueue(1, registration.SerializeAsString());
    const copycat::EncodedOperation put = serializer->encode(copycat::kv::PutCommand("k", "v"));
    const auto command = [&](copycat::Index index, std::uint64_t sequence,
                             std::uint64_t acknowledged) {
      enqueue(index,
              copycat::server::encodeLogOperation(1000 + static_cast<std::int64_t>(index), 1,
                                                  sequence, put.typeId, put.bytes, acknowledged));
    };
    command(2, 1, 0);
    command(3, 2, 1);  // the client has the result of command 1
    command(4, 1, 0);  // command 1 again: forgotten
    command(5, 2, 9);  // command 2 again: its first result (never acknowledges itself)
    QTRY_VERIFY_WITH_TIMEOUT(
        [&] {
          std::lock_guard lock(mutex);
          return outcomes.size() == 5;
        }(),
        10000);
    std::lock_guard lock(mutex);
    QVERIFY(outcomes[2].result.ok() && outcomes[3].result.ok());
    QVERIFY(!outcomes[4].result.ok());
    QCOMPARE(copycat::toString(outcomes[4].result.error().code),
             copycat::toString(ErrorCode::IllegalState));
    QVERIFY(outcomes[5].result.ok());
    QCOMPARE(outcomes[5].index, copycat::Index(3));
    executor.stop();
  }

  void expiresByLogTimeOnly() {
    SessionTable table;
    table.open(1, "a", 500, 1000);
    table.open(2, "b", 500, 1000);
    QVERIFY(table.keepAlive(2, 0, 0, 1400));
    QVERIFY(table.expire(1500).empty());  // exactly at the timeout: still open
    const std::vector<copycat::SessionId> expired = table.expire(1501);
    QCOMPARE(expired.size(), std::size_t{1});
    QCOMPARE(expired.front(), copycat::SessionId{1});
    QVERIFY(!table.contains(1));
    QVERIFY(table.contains(2));
    // A command refreshes its session like a keep-alive.
    QCOMPARE(table.admit(2, 1, 1800), Admission::Apply);
    QVERIFY(table.expire(2200).empty());
    QCOMPARE(table.expire(2301).size(), std::size_t{1});
  }

  void eventsAreNumberedAndReleased() {
    SessionTable table;
    table.open(4, "c", 1000, 0);
    QCOMPARE(table.publish(4, "e", "1"), copycat::Index{1});
    QCOMPARE(table.publish(4, "e", "2"), copycat::Index{2});
    QCOMPARE(table.publish(4, "e", "3"), copycat::Index{3});
    QCOMPARE(table.publish(5, "e", "lost"), copycat::Index{0});
    QCOMPARE(table.eventsAfter(4, 1).size(), std::size_t{2});
    QVERIFY(table.keepAlive(4, 0, 2, 10));
    const auto left = table.eventsAfter(4, 0);
    QCOMPARE(left.size(), std::size_t{1});
    QCOMPARE(left.front().payload, std::string("3"));
    QCOMPARE(table.eventIndexOf(4), copycat::Index{3});
  }

  void snapshotRoundTrip() {
    SessionTable table;
    table.open(3, "c", 900, 50);
    QCOMPARE(table.admit(3, 1, 60), Admission::Apply);
    table.record(3, 1, result("ok", 4));
    QCOMPARE(table.admit(3, 2, 70), Admission::Apply);
    Outcome failed;
    failed.result = Error{ErrorCode::ApplicationError, "boom"};
    failed.index = 5;
    table.record(3, 2, failed);
    table.publish(3, "note", "payload");
    copycat::serverlog::ExecutorSnapshot snapshot;
    table.save(snapshot);

    SessionTable restored;
    QVERIFY(restored.load(snapshot));
    Outcome cached;
    QCOMPARE(restored.admit(3, 2, 80, &cached), Admission::Duplicate);
    QVERIFY(!cached.result.ok());
    QVERIFY(cached.result.error().code == ErrorCode::ApplicationError);
    QCOMPARE(cached.result.error().message, std::string("boom"));
    QCOMPARE(restored.eventsAfter(3, 0).size(), std::size_t{1});
    QCOMPARE(restored.admit(3, 3, 90), Admission::Apply);
    QVERIFY(restored.expire(990).empty());  // last active at 90, timeout 900
    QCOMPARE(restored.expire(991).size(), std::size_t{1});
  }

  void inconsistentSnapshotsAreRejected() {
    copycat::serverlog::ExecutorSnapshot duplicateIds;
    duplicateIds.add_sessions()->set_id(1);
    duplicateIds.add_sessions()->set_id(1);
    copycat::serverlog::ExecutorSnapshot futureResponse;
    auto* record = futureResponse.add_sessions();
    record->set_id(2);
    record->set_command_sequence(1);
    record->add_responses()->set_sequence(5);
    copycat::serverlog::ExecutorSnapshot eventsOutOfOrder;
    record = eventsOutOfOrder.add_sessions();
    record->set_id(3);
    record->set_event_index(5);
    record->add_events()->set_index(4);
    record->add_events()->set_index(2);
    copycat::serverlog::ExecutorSnapshot badCode;
    record = badCode.add_sessions();
    record->set_id(4);
    record->set_command_sequence(1);
    auto* response = record->add_responses();
    response->set_sequence(1);
    response->set_error_code(200);
    for (const auto* snapshot : {&duplicateIds, &futureResponse, &eventsOutOfOrder, &badCode}) {
      SessionTable table;
      table.open(9, "kept?", 100, 0);
      QVERIFY(!table.load(*snapshot));
      QCOMPARE(table.size(), std::size_t{0});
    }
  }
};

QTEST_GUILESS_MAIN(SessionTableTest)
#include "session_table_test.moc"
