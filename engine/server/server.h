#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include <QFuture>
#include <QFutureWatcher>
#include <QString>
#include <QStringList>

#include "engine/api/serializer.h"
#include "engine/api/state_machine.h"
#include "engine/raft/node.h"
#include "engine/server/raft_runtime.h"
#include "engine/server/server_config.h"
#include "engine/server/server_node.h"
#include "engine/storage/disk_storage.h"

namespace copycat::client {
class Client;
}

namespace copycat::server {

class StateMachineExecutor;

/// One Copycat server (the Copycat API of DESIGN.md): a consensus runtime on
/// its own thread (ServerNode) and the user's state machine on another
/// (StateMachineExecutor). Built with Server::builder(address). The owner
/// thread calls start/bootstrap/shutdown; submit() and the queries may be
/// used from any thread.
///
/// Futures of submit(): an Expected holding the operation's result or its
/// Error (unregistered type, bad bytes, the handler threw...), decided by
/// the state machine identically on every replica. The future itself fails
/// with ServerError when the server cannot tell the outcome: not the leader
/// (ServerError::leader names the one it knows), leadership lost before the
/// entry was applied, or the server stopped (a future may also be cancelled
/// then).
class Server {
 public:
  using StateMachineFactory = std::function<std::unique_ptr<StateMachine>()>;
  using Registration = std::function<void(Serializer&)>;

  class Builder {
   public:
    explicit Builder(QString address);

    Builder& withStateMachine(StateMachineFactory factory);
    /// The operation types, registered with their stable ids.
    Builder& withSerializer(Serializer serializer);
    /// Registers the operation types on the server's serializer (may be
    /// combined with withSerializer).
    Builder& withRegistration(Registration registration);
    /// Where and how durably the log and snapshots are kept. `snapshotEntries`:
    /// the state machine is snapshotted (and the log compacted) every this
    /// many applied entries; 0 never.
    Builder& withStorage(storage::StorageLevel level, QString directory = {},
                         std::uint64_t segmentBytes = 32u << 20,
                         std::uint64_t snapshotEntries = 10000);
    Builder& withElectionTimeout(std::chrono::milliseconds timeout);
    Builder& withHeartbeatInterval(std::chrono::milliseconds interval);
    /// How long a client session lives without a keep-alive when the client
    /// asks for no timeout of its own (log time).
    Builder& withSessionTimeout(std::chrono::milliseconds timeout);
    /// Disk level: how long a leader may defer the sync of its own log while
    /// its followers alone can commit the entries (ServerConfig::ownSyncDelayMs;
    /// default 2 ms); 0 syncs every batch at once.
    Builder& withOwnSyncDelay(std::chrono::milliseconds delay);
    /// How long a follower may hold committed entries before its state
    /// machine applies them (ServerConfig::followerApplyDelayMs; default
    /// 5 ms); 0 applies every batch at once.
    Builder& withFollowerApplyDelay(std::chrono::milliseconds delay);
    Builder& withClusterId(std::string clusterId);
    Builder& withName(QString name);
    /// Adjusts the runtime configuration directly (tests, tools).
    Builder& withConfig(std::function<void(ServerConfig&)> tweak);

    /// Creates the server (not started). Throws std::invalid_argument on an
    /// invalid address, a missing state machine factory, or a state machine
    /// handling types the serializer does not know.
    std::unique_ptr<Server> build();

   private:
    QString m_address;
    QString m_name;
    StateMachineFactory m_factory;
    Serializer m_serializer;
    std::vector<Registration> m_registrations;
    storage::StorageLevel m_level = storage::StorageLevel::Memory;
    QString m_directory;
    std::uint64_t m_segmentBytes = 32u << 20;
    std::uint64_t m_snapshotEntries = 10000;
    std::chrono::milliseconds m_electionTimeout{500};
    std::chrono::milliseconds m_heartbeatInterval{50};
    std::chrono::milliseconds m_sessionTimeout{5000};
    std::chrono::milliseconds m_ownSyncDelay{ServerConfig{}.ownSyncDelayMs};
    std::chrono::milliseconds m_followerApplyDelay{ServerConfig{}.followerApplyDelayMs};
    std::string m_clusterId;
    std::vector<std::function<void(ServerConfig&)>> m_tweaks;
  };

  static Builder builder(QString address) { return Builder(std::move(address)); }

  /// The member id every server derives from a "host:port" address.
  static raft::NodeId idOf(const QString& address);

  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Starts from storage: restores the latest snapshot, re-applies the
  /// committed log and rejoins the cluster the storage belongs to (an empty
  /// storage waits for bootstrap or for a leader). Fails with ServerError.
  QFuture<void> start();
  /// Founds a one-node cluster of this server (starting it if needed).
  QFuture<void> bootstrap();
  /// Founds a cluster of `members` ("host:port", this server among them).
  QFuture<void> bootstrap(const QStringList& members);
  /// Adds this server to the cluster that `members` (some of its servers,
  /// "host:port") belong to: it starts from its empty storage, asks the
  /// leader to add it as a passive member, receives the log or a snapshot,
  /// and is promoted to an active member once it caught up. Finished when
  /// the promotion committed; fails with ServerError when the cluster
  /// refused or could not be reached within `timeout`.
  QFuture<void> join(const QStringList& members,
                     std::chrono::milliseconds timeout = std::chrono::seconds(60));
  /// Removes this server from its cluster (a leader hands leadership over
  /// first). Finished when the removal committed; the server keeps running
  /// (and can no longer disrupt the cluster) until shutdown().
  QFuture<void> leave(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  /// Fault injection (tests, the Lab): cuts or heals this server's link to
  /// `peer`. While cut, Raft messages between the two are lost in both
  /// directions (cut the link on both servers for a symmetric partition).
  void setLinkCut(raft::NodeId peer, bool cut);
  /// Stops the state machine and the runtime. Finished when both are gone.
  QFuture<void> shutdown();

  /// Submits an encoded operation of a registered type. A command goes
  /// through the log (this server must be the leader); a query is served
  /// after a ReadIndex round (Linearizable, the default), on the leader's
  /// lease (LinearizableLease), or locally once this server applied
  /// `minIndex` (Sequential). An unregistered type id gives UnknownOperation
  /// at once.
  QFuture<Expected<std::string>> submit(TypeId typeId, std::string bytes,
                                        std::optional<Consistency> consistency = std::nullopt,
                                        Index minIndex = 0);

  /// Typed submit: encodes `operation` and decodes its result. An
  /// unregistered type gives UnknownOperation at once, never a crash.
  template <Operation Op>
  QFuture<Expected<typename Op::Result>> submit(
      const Op& operation, std::optional<Consistency> consistency = std::nullopt,
      Index minIndex = 0) {
    using R = typename Op::Result;
    EncodedOperation encoded;
    try {
      encoded = m_serializer->encode(operation);
    } catch (const std::exception& error) {
      return QtFuture::makeReadyFuture(
          Expected<R>(Error{ErrorCode::UnknownOperation, error.what()}));
    }
    std::shared_ptr<const Serializer> serializer = m_serializer;
    return submit(encoded.typeId, std::move(encoded.bytes), consistency, minIndex)
        .then(QtFuture::Launch::Sync, [serializer](Expected<std::string> result) -> Expected<R> {
          if (!result) return result.error();
          return serializer->template decodeResult<Op>(*result);
        });
  }

  raft::NodeId id() const { return m_config.id; }
  const QString& address() const { return m_config.address; }
  const QString& name() const { return m_name; }
  const ServerConfig& config() const { return m_config; }
  const Serializer& serializer() const { return *m_serializer; }
  bool isRunning() const;
  bool isLeader() const;
  raft::Status status() const;
  /// Every member address this server knows (itself included).
  std::map<raft::NodeId, QString> memberAddresses() const;
  /// Bytes of log this server keeps (disk or memory).
  std::uint64_t logBytes() const;
  /// Syncs, batches and entries this server's storage wrote since it started
  /// (updated after every Ready batch).
  storage::StorageCounters storageCounters() const;
  /// The index the state machine has applied.
  Index appliedIndex() const;
  /// Snapshots the executor has taken since the server started.
  std::uint64_t snapshotsTaken() const;
  /// Why the server stopped, or did not start (empty while healthy).
  QString failure() const;

 private:
  Server(ServerConfig config, QString name, StateMachineFactory factory,
         std::shared_ptr<const Serializer> serializer);
  bool ensureStarted(QString* error);
  /// Replaces m_adminClient by a client of `members` for join() / leave().
  void startAdminClient(const QStringList& members, std::chrono::milliseconds timeout,
                        const QString& name);
  void stopAll();
  std::int64_t nextTimestamp();

  ServerConfig m_config;
  QString m_name;
  StateMachineFactory m_factory;
  std::shared_ptr<const Serializer> m_serializer;
  std::unique_ptr<ServerNode> m_node;
  std::unique_ptr<StateMachineExecutor> m_executor;
  /// The client that carries join() and leave() to the leader.
  std::unique_ptr<client::Client> m_adminClient;
  std::mutex m_clockMutex;
  std::int64_t m_lastTimestamp = 0;
};

}  // namespace copycat::server
