// SerialWorker (engine/server/serial_worker.h): jobs run in order, one at a
// time, on the worker's own thread; waitForIdle() and the destructor wait
// for them.
#include "engine/server/serial_worker.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <QtTest>

using copycat::server::SerialWorker;

class SerialWorkerTest : public QObject {
  Q_OBJECT

 private slots:
  void runsJobsInOrderOneAtATimeOnItsThread() {
    SerialWorker worker(QStringLiteral("test-worker"));
    std::mutex mutex;
    std::vector<int> order;
    std::vector<std::thread::id> threads;
    std::atomic<int> running{0};
    std::atomic<int> overlapped{0};
    constexpr int kJobs = 200;
    for (int job = 0; job < kJobs; ++job) {
      worker.post([&, job] {
        if (running.fetch_add(1) != 0) overlapped.fetch_add(1);
        if (job % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        {
          std::lock_guard lock(mutex);
          order.push_back(job);
          threads.push_back(std::this_thread::get_id());
        }
        running.fetch_sub(1);
      });
    }
    worker.waitForIdle();
    std::lock_guard lock(mutex);
    QCOMPARE(static_cast<int>(order.size()), kJobs);
    for (int job = 0; job < kJobs; ++job) QCOMPARE(order[static_cast<std::size_t>(job)], job);
    QCOMPARE(overlapped.load(), 0);
    for (const std::thread::id& id : threads) {
      QCOMPARE(id, threads.front());
      QVERIFY(id != std::this_thread::get_id());
    }
  }

  void waitForIdleWaitsForTheRunningJob() {
    SerialWorker worker(QStringLiteral("test-worker"));
    std::atomic<bool> started{false};
    std::atomic<bool> finished{false};
    worker.post([&] {
      started = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      finished = true;
    });
    while (!started) std::this_thread::yield();
    worker.waitForIdle();
    QVERIFY(finished);
    // Idle already: returns at once, and the worker takes jobs again.
    worker.waitForIdle();
    std::atomic<bool> again{false};
    worker.post([&] { again = true; });
    worker.waitForIdle();
    QVERIFY(again);
  }

  void destructorRunsWhatIsQueued() {
    std::atomic<int> ran{0};
    {
      SerialWorker worker(QStringLiteral("test-worker"));
      worker.post([] { std::this_thread::sleep_for(std::chrono::milliseconds(20)); });
      for (int job = 0; job < 10; ++job) worker.post([&] { ran.fetch_add(1); });
    }
    QCOMPARE(ran.load(), 10);
  }
};

QTEST_GUILESS_MAIN(SerialWorkerTest)
#include "serial_worker_test.moc"
