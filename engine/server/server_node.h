#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <QByteArray>
#include <QFuture>
#include <QString>

#include "engine/raft/node.h"
#include "engine/server/raft_runtime.h"
#include "engine/server/server_config.h"

class QThread;

namespace copycat::server {

/// Owns one server: a RaftRuntime on a dedicated QThread with its own event
/// loop. start(), stop() and the setters are called from one owner thread
/// (typically the main or test thread); the queries and the futures may be
/// used from any thread. Callbacks run on the runtime's thread.
class ServerNode {
 public:
  explicit ServerNode(ServerConfig config);
  ~ServerNode();
  ServerNode(const ServerNode&) = delete;
  ServerNode& operator=(const ServerNode&) = delete;

  /// Set before start(); invoked on the runtime's thread.
  void setCallbacks(RuntimeCallbacks callbacks) { m_callbacks = std::move(callbacks); }
  /// Set before start(): creates the client connection handler on the
  /// runtime's thread.
  void setClientHandlerFactory(ClientHandlerFactory factory) {
    m_clientHandlerFactory = std::move(factory);
  }

  /// Starts the thread, opens storage and listens. Returns false (see
  /// failure()) when the server could not start; it is then stopped.
  bool start();
  /// Shuts the runtime down and joins its thread. Safe to call twice.
  void stop();

  QFuture<raft::Index> propose(std::string data);
  QFuture<raft::Index> propose(const QByteArray& data) {
    return propose(std::string(data.constData(), static_cast<std::size_t>(data.size())));
  }
  /// Commit tracking: see RaftRuntime::propose.
  QFuture<raft::Index> propose(std::string data, AcceptedCallback accepted);
  /// See RaftRuntime::readIndex.
  QFuture<raft::Index> readIndex(bool lease = false);
  /// See RaftRuntime::storeSnapshot; ignored when the server is not running.
  /// Must not race with stop().
  void storeSnapshot(raft::Index index, std::string data);
  QFuture<void> bootstrap(std::map<raft::NodeId, QString> members);
  /// See RaftRuntime::learnAddresses.
  void learnAddresses(std::map<raft::NodeId, QString> addresses);
  /// See RaftRuntime::setLinkCut.
  void setLinkCut(raft::NodeId peer, bool cut);
  /// See RaftRuntime::transferLeadership.
  void transferLeadership(raft::NodeId target);
  /// See RaftRuntime::handOutHeldEntriesSoon.
  void handOutHeldEntriesSoon();

  const ServerConfig& config() const { return m_config; }
  bool isRunning() const;
  /// The core's status after the latest Ready batch.
  raft::Status status() const;
  QString failure() const;
  std::vector<raft::NodeId> connectedPeers() const;
  std::uint64_t rejectedConnections() const;
  /// Every member address this server knows (itself included).
  std::map<raft::NodeId, QString> addresses() const;
  std::uint64_t logBytes() const;
  storage::StorageCounters storageCounters() const;
  quint16 listenPort() const;

 private:
  ServerConfig m_config;
  RuntimeCallbacks m_callbacks;
  ClientHandlerFactory m_clientHandlerFactory;
  std::shared_ptr<RuntimeState> m_state;
  std::unique_ptr<QThread> m_thread;
  RaftRuntime* m_runtime = nullptr;
};

}  // namespace copycat::server
