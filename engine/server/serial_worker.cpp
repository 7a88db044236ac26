#include "engine/server/serial_worker.h"

#include <utility>

#include <QThread>

namespace copycat::server {

SerialWorker::SerialWorker(const QString& name) {
  m_thread.reset(QThread::create([this] { run(); }));
  m_thread->setObjectName(name);
  m_thread->start();
}

SerialWorker::~SerialWorker() {
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_wake.notify_one();
  m_thread->wait();
}

void SerialWorker::post(std::function<void()> job) {
  {
    std::lock_guard lock(m_mutex);
    m_jobs.push_back(std::move(job));
  }
  // Notified after unlocking: the woken thread never waits for the lock.
  m_wake.notify_one();
}

void SerialWorker::waitForIdle() {
  std::unique_lock lock(m_mutex);
  m_idle.wait(lock, [this] { return m_jobs.empty() && !m_running; });
}

void SerialWorker::run() {
  std::unique_lock lock(m_mutex);
  for (;;) {
    m_wake.wait(lock, [this] { return !m_jobs.empty() || m_stopping; });
    if (m_jobs.empty()) return;
    std::function<void()> job = std::move(m_jobs.front());
    m_jobs.pop_front();
    m_running = true;
    lock.unlock();
    job();
    job = nullptr;
    lock.lock();
    m_running = false;
    if (m_jobs.empty()) m_idle.notify_all();
  }
}

}  // namespace copycat::server
