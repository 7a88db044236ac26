#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <QString>
#include <QStringList>

#include "engine/api/operation.h"

class QObject;

namespace copycat::client {
class Client;
}

namespace copycat::bench {

/// What the clients do.
struct LoadSpec {
  int clients = 1;
  double rate = 0;  // open loop over all clients (ops/s); 0: closed loop
  int valueBytes = 256;
  double readRatio = 0;
  Consistency consistency = Consistency::Linearizable;
  int keys = 10000;
  /// Stop after this many operations (closed loop; writes keys 0, 1, 2...
  /// in order): a fill. 0: run until stop().
  std::uint64_t totalOps = 0;
  /// Keep (submit, done, ok) of every operation (failover).
  bool recordEvents = false;
  /// Event threads the clients share, round-robin; 0: a thread per client.
  int clientThreads = 2;
};

/// One operation's times (steady clock, ns).
struct OpEvent {
  std::int64_t submitNs = 0;
  std::int64_t doneNs = 0;
  bool ok = false;
};

/// Clients that submit map operations, one session and TCP connection each.
/// Closed loop: each client keeps one operation outstanding, issuing the next
/// from the completion of the previous (on the client's own thread). Open
/// loop: tick() (main thread) issues the operations due by the schedule,
/// round-robin over the clients, and a latency counts from the scheduled
/// time. Completions inside the measurement window (setWindow) are recorded;
/// results are read after finish(), once every client thread is gone.
class LoadDriver {
 public:
  LoadDriver(QStringList members, LoadSpec spec);
  ~LoadDriver();
  LoadDriver(const LoadDriver&) = delete;
  LoadDriver& operator=(const LoadDriver&) = delete;

  /// Opens every session (in parallel). False with `error` when one failed.
  bool connect(QString* error);
  /// Starts issuing.
  void begin();
  /// Open loop: issues what is due; call at least every millisecond or so.
  void tick();
  /// Latencies and counts are kept for operations completing in [from, to).
  void setWindow(std::int64_t fromNs, std::int64_t toNs);
  /// Stops issuing; waits up to `drainMs` for outstanding operations, closes
  /// the sessions and joins the client threads.
  void finish(int drainMs = 15000);

  /// Completed operations so far (any thread).
  std::uint64_t completed() const { return m_completed.load(std::memory_order_relaxed); }
  std::uint64_t failed() const { return m_failed.load(std::memory_order_relaxed); }
  /// The latest submit time of a successful operation (failover).
  std::int64_t lastOkSubmitNs() const { return m_lastOkSubmit.load(); }
  bool fillDone() const;

  // After finish():
  std::vector<std::int64_t> windowLatencies() const;
  std::uint64_t windowOps() const;
  std::uint64_t windowErrors() const;
  std::vector<OpEvent> events() const;
  std::uint64_t outstandingAtFinish() const { return m_outstandingAtFinish; }

 private:
  struct Worker;
  void issueClosed(Worker* worker);
  void submit(Worker* worker, std::int64_t startNs, bool closedLoop);
  void complete(Worker* worker, std::int64_t startNs, std::int64_t submitNs, bool ok,
                bool closedLoop);

  QStringList m_members;
  LoadSpec m_spec;
  /// Main-thread context of the retries after a failure; deleting it cancels them.
  std::unique_ptr<QObject> m_context;
  std::string m_value;
  std::vector<std::unique_ptr<Worker>> m_workers;
  std::atomic<bool> m_stop{false};
  std::atomic<std::int64_t> m_windowFrom{INT64_MAX};
  std::atomic<std::int64_t> m_windowTo{INT64_MAX};
  std::atomic<std::uint64_t> m_completed{0};
  std::atomic<std::uint64_t> m_failed{0};
  std::atomic<std::int64_t> m_outstanding{0};
  std::atomic<std::uint64_t> m_nextKey{0};
  std::atomic<std::int64_t> m_lastOkSubmit{0};
  std::int64_t m_openStartNs = 0;
  std::uint64_t m_openIssued = 0;
  std::uint64_t m_outstandingAtFinish = 0;
  bool m_finished = false;
};

}  // namespace copycat::bench
