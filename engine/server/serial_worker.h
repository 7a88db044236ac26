#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include <QString>

class QThread;

namespace copycat::server {

/// One thread that runs the jobs posted to it in order, one at a time. The
/// runtime's data syncs run here: handing a job over takes one wake-up of a
/// thread that then runs it at once (a QThreadPool also made the woken thread
/// wait for the pool's lock, which the poster still held). post() and
/// waitForIdle() may be called from any thread; jobs must not throw. The
/// destructor runs what is still queued, then joins.
class SerialWorker {
 public:
  /// `name` names the thread (seen in top, perf and gdb).
  explicit SerialWorker(const QString& name);
  ~SerialWorker();
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  void post(std::function<void()> job);
  /// Returns once every job posted before has finished.
  void waitForIdle();

 private:
  void run();

  std::mutex m_mutex;
  std::condition_variable m_wake;
  std::condition_variable m_idle;
  std::deque<std::function<void()>> m_jobs;
  bool m_running = false;
  bool m_stopping = false;
  std::unique_ptr<QThread> m_thread;
};

}  // namespace copycat::server
