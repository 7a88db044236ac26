#include "engine/server/server_node.h"

#include <QMutexLocker>
#include <QPromise>
#include <QThread>

namespace copycat::server {

namespace {

template <typename T>
QFuture<T> failedFuture(const QString& message) {
  QPromise<T> promise;
  QFuture<T> future = promise.future();
  promise.start();
  promise.setException(ServerError(message));
  promise.finish();
  return future;
}

}  // namespace

ServerNode::ServerNode(ServerConfig config)
    : m_config(std::move(config)), m_state(std::make_shared<RuntimeState>()) {}

ServerNode::~ServerNode() { stop(); }

bool ServerNode::start() {
  if (m_runtime) return true;
  {
    QMutexLocker lock(&m_state->mutex);
    m_state->failure.clear();
  }
  m_thread = std::make_unique<QThread>();
  m_thread->setObjectName(QStringLiteral("copycat-server-%1").arg(m_config.id));
  m_runtime = new RaftRuntime(m_config, m_callbacks, m_state, m_clientHandlerFactory);
  m_runtime->moveToThread(m_thread.get());
  m_thread->start();
  bool started = false;
  QMetaObject::invokeMethod(
      m_runtime, [this, &started] { started = m_runtime->start(); }, Qt::BlockingQueuedConnection);
  if (!started) stop();
  return started;
}

void ServerNode::stop() {
  if (!m_runtime) return;
  QMetaObject::invokeMethod(
      m_runtime, [this] { m_runtime->shutdown(); }, Qt::BlockingQueuedConnection);
  m_thread->quit();
  m_thread->wait();
  // The thread is gone: its pending queued calls (and their promises, which
  // then cancel their futures) die with the runtime.
  delete m_runtime;
  m_runtime = nullptr;
  m_thread.reset();
}

QFuture<raft::Index> ServerNode::propose(std::string data) {
  if (!m_runtime) return failedFuture<raft::Index>(QStringLiteral("the server is not running"));
  return m_runtime->propose(std::move(data));
}

QFuture<raft::Index> ServerNode::propose(std::string data, AcceptedCallback accepted) {
  if (!m_runtime) return failedFuture<raft::Index>(QStringLiteral("the server is not running"));
  return m_runtime->propose(std::move(data), std::move(accepted));
}

QFuture<raft::Index> ServerNode::readIndex(bool lease) {
  if (!m_runtime) return failedFuture<raft::Index>(QStringLiteral("the server is not running"));
  return m_runtime->readIndex(lease);
}

void ServerNode::storeSnapshot(raft::Index index, std::string data) {
  if (m_runtime) m_runtime->storeSnapshot(index, std::move(data));
}

QFuture<void> ServerNode::bootstrap(std::map<raft::NodeId, QString> members) {
  if (!m_runtime) return failedFuture<void>(QStringLiteral("the server is not running"));
  return m_runtime->bootstrap(std::move(members));
}

void ServerNode::learnAddresses(std::map<raft::NodeId, QString> addresses) {
  if (m_runtime) m_runtime->learnAddresses(std::move(addresses));
}

void ServerNode::setLinkCut(raft::NodeId peer, bool cut) {
  if (m_runtime) m_runtime->setLinkCut(peer, cut);
}

void ServerNode::transferLeadership(raft::NodeId target) {
  if (m_runtime) m_runtime->transferLeadership(target);
}

void ServerNode::handOutHeldEntriesSoon() {
  if (m_runtime) m_runtime->handOutHeldEntriesSoon();
}

std::map<raft::NodeId, QString> ServerNode::addresses() const {
  QMutexLocker lock(&m_state->mutex);
  return m_state->addresses;
}

std::uint64_t ServerNode::logBytes() const {
  QMutexLocker lock(&m_state->mutex);
  return m_state->logBytes;
}

storage::StorageCounters ServerNode::storageCounters() const {
  QMutexLocker lock(&m_state->mutex);
  return m_state->storage;
}

quint16 ServerNode::listenPort() const {
  QMutexLocker lock(&m_state->mutex);
  return m_state->listenPort;
}

bool ServerNode::isRunning() const {
  QMutexLocker lock(&m_state->mutex);
  return m_state->running;
}

raft::Status ServerNode::status() const {
  QMutexLocker lock(&m_state->mutex);
  return m_state->status;
}

QString ServerNode::failure() const {
  QMutexLocker lock(&m_state->mutex);
  return m_state->failure;
}

std::vector<raft::NodeId> ServerNode::connectedPeers() const {
  QMutexLocker lock(&m_state->mutex);
  return m_state->connectedPeers;
}

std::uint64_t ServerNode::rejectedConnections() const {
  QMutexLocker lock(&m_state->mutex);
  return m_state->rejectedConnections;
}

}  // namespace copycat::server
