#include "bench/copycat_bench/load.h"

#include <algorithm>
#include <thread>

#include <QCoreApplication>
#include <QFuture>
#include <QMetaObject>
#include <QObject>
#include <QTimer>

#include "bench/copycat_bench/cluster.h"
#include "bench/copycat_bench/stats.h"
#include "engine/client/client.h"
#include "engine/kv/map_state_machine.h"

namespace copycat::bench {

namespace {
/// At most this many operations outstanding in the open loop; later ones
/// wait (and their latency, counted from the schedule, grows).
constexpr std::int64_t kOpenLoopCap = 20000;
}  // namespace

struct LoadDriver::Worker {
  std::unique_ptr<client::Client> client;
  std::mt19937_64 rng;
  // Written only on the client's thread; read after the client is gone.
  std::vector<std::int64_t> latencies;
  std::vector<OpEvent> events;
  std::uint64_t windowOps = 0;
  std::uint64_t windowErrors = 0;
};

LoadDriver::LoadDriver(QStringList members, LoadSpec spec)
    : m_members(std::move(members)),
      m_spec(spec),
      m_context(std::make_unique<QObject>()),
      m_value(static_cast<std::size_t>(spec.valueBytes), 'v') {
  std::vector<std::shared_ptr<client::ClientThread>> threads;
  for (int i = 0; i < std::min(m_spec.clientThreads, m_spec.clients); ++i) {
    threads.push_back(std::make_shared<client::ClientThread>());
  }
  for (int i = 0; i < m_spec.clients; ++i) {
    auto worker = std::make_unique<Worker>();
    worker->client = makeClient(
        m_members, QStringLiteral("bench-%1").arg(i + 1), std::chrono::seconds(10),
        threads.empty() ? nullptr : threads[static_cast<std::size_t>(i) % threads.size()]);
    worker->rng.seed(0x5eed + static_cast<std::uint64_t>(i));
    m_workers.push_back(std::move(worker));
  }
}

LoadDriver::~LoadDriver() {
  finish(2000);
  m_context.reset();
}

bool LoadDriver::connect(QString* error) {
  std::vector<QFuture<Expected<void>>> futures;
  for (auto& worker : m_workers) futures.push_back(worker->client->connect());
  for (auto& future : futures) {
    const Expected<void> result = future.result();
    if (!result) {
      *error = QStringLiteral("a client could not open its session: %1")
                   .arg(QString::fromStdString(result.error().message));
      return false;
    }
  }
  return true;
}

void LoadDriver::begin() {
  if (m_spec.rate > 0) {
    m_openStartNs = nowNs();
    return;
  }
  for (auto& worker : m_workers) {
    m_outstanding.fetch_add(1);
    issueClosed(worker.get());
  }
}

void LoadDriver::issueClosed(Worker* worker) {
  if (m_stop.load(std::memory_order_relaxed)) {
    m_outstanding.fetch_sub(1);
    return;
  }
  const std::int64_t start = nowNs();
  submit(worker, start, true);
}

bool LoadDriver::fillDone() const { return m_spec.totalOps > 0 && completed() >= m_spec.totalOps; }

void LoadDriver::submit(Worker* worker, std::int64_t startNs, bool closedLoop) {
  std::string key;
  bool read = false;
  if (m_spec.totalOps > 0) {
    const std::uint64_t n = m_nextKey.fetch_add(1);
    if (n >= m_spec.totalOps) {
      if (closedLoop) m_outstanding.fetch_sub(1);
      return;
    }
    key = "k" + std::to_string(n);
  } else {
    key = "k" + std::to_string(worker->rng() % static_cast<std::uint64_t>(m_spec.keys));
    read = m_spec.readRatio > 0 &&
           std::uniform_real_distribution<double>(0, 1)(worker->rng) < m_spec.readRatio;
  }
  const std::int64_t submitNs = nowNs();
  QFuture<Expected<std::optional<std::string>>> future =
      read ? worker->client->submit(kv::GetQuery(std::move(key)), m_spec.consistency)
           : worker->client->submit(kv::PutCommand(std::move(key), m_value));
  future.then(QtFuture::Launch::Sync, [this, worker, startNs, submitNs, closedLoop](
                                          const Expected<std::optional<std::string>>& result) {
    complete(worker, startNs, submitNs, result.ok(), closedLoop);
  });
}

void LoadDriver::complete(Worker* worker, std::int64_t startNs, std::int64_t submitNs, bool ok,
                          bool closedLoop) {
  const std::int64_t done = nowNs();
  if (done >= m_windowFrom.load(std::memory_order_relaxed) &&
      done < m_windowTo.load(std::memory_order_relaxed)) {
    if (ok) {
      worker->latencies.push_back(done - startNs);
      ++worker->windowOps;
    } else {
      ++worker->windowErrors;
    }
  }
  if (m_spec.recordEvents) worker->events.push_back({submitNs, done, ok});
  if (ok) {
    m_completed.fetch_add(1, std::memory_order_relaxed);
    std::int64_t seen = m_lastOkSubmit.load();
    while (submitNs > seen && !m_lastOkSubmit.compare_exchange_weak(seen, submitNs)) {
    }
  } else {
    m_failed.fetch_add(1, std::memory_order_relaxed);
  }
  if (!closedLoop) {
    m_outstanding.fetch_sub(1);
    return;
  }
  if (ok) {
    issueClosed(worker);
    return;
  }
  // A failure may be immediate (the future was ready at submit): retry after a
  // pause, from the main thread, so that failures never recurse.
  QObject* context = m_context.get();
  QMetaObject::invokeMethod(
      context,
      [this, worker, context] {
        QTimer::singleShot(20, context, [this, worker] { issueClosed(worker); });
      },
      Qt::QueuedConnection);
}

void LoadDriver::tick() {
  if (m_spec.rate <= 0 || m_stop.load()) return;
  const std::int64_t now = nowNs();
  const auto due =
      static_cast<std::uint64_t>(static_cast<double>(now - m_openStartNs) / 1e9 * m_spec.rate);
  while (m_openIssued < due && m_outstanding.load() < kOpenLoopCap) {
    const auto scheduled =
        m_openStartNs +
        static_cast<std::int64_t>(static_cast<double>(m_openIssued) / m_spec.rate * 1e9);
    Worker* worker = m_workers[m_openIssued % m_workers.size()].get();
    ++m_openIssued;
    m_outstanding.fetch_add(1);
    submit(worker, scheduled, false);
  }
}

void LoadDriver::setWindow(std::int64_t fromNs, std::int64_t toNs) {
  m_windowFrom.store(fromNs);
  m_windowTo.store(toNs);
}

void LoadDriver::finish(int drainMs) {
  if (m_finished) return;
  m_finished = true;
  m_stop.store(true);
  const std::int64_t deadline = nowNs() + std::int64_t{drainMs} * 1000000;
  while (m_outstanding.load() > 0 && nowNs() < deadline) {
    QCoreApplication::processEvents(QEventLoop::AllEvents, 10);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  m_outstandingAtFinish =
      static_cast<std::uint64_t>(std::max<std::int64_t>(0, m_outstanding.load()));
  std::vector<QFuture<Expected<void>>> closing;
  for (auto& worker : m_workers) closing.push_back(worker->client->close());
  for (auto& future : closing) future.waitForFinished();
  for (auto& worker : m_workers) worker->client.reset();
  // Retries queued on the main thread may still name a worker: run them now
  // (they see m_stop and do nothing).
  QCoreApplication::processEvents();
}

std::vector<std::int64_t> LoadDriver::windowLatencies() const {
  std::vector<std::int64_t> all;
  for (const auto& worker : m_workers)
    all.insert(all.end(), worker->latencies.begin(), worker->latencies.end());
  return all;
}

std::uint64_t LoadDriver::windowOps() const {
  std::uint64_t total = 0;
  for (const auto& worker : m_workers) total += worker->windowOps;
  return total;
}

std::uint64_t LoadDriver::windowErrors() const {
  std::uint64_t total = 0;
  for (const auto& worker : m_workers) total += worker->windowErrors;
  return total;
}

std::vector<OpEvent> LoadDriver::events() const {
  std::vector<OpEvent> all;
  for (const auto& worker : m_workers)
    all.insert(all.end(), worker->events.begin(), worker->events.end());
  std::sort(all.begin(), all.end(),
            [](const OpEvent& a, const OpEvent& b) { return a.doneNs < b.doneNs; });
  return all;
}

}  // namespace copycat::bench
