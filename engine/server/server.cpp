#include "engine/server/server.h"

#include <algorithm>
#include <stdexcept>

#include <QDateTime>
#include <QPromise>

#include "engine/client/client.h"
#include "engine/server/client_service.h"
#include "engine/server/state_machine_executor.h"

namespace copycat::server {

namespace {

/// A delay option's milliseconds: 0 to 1000, else std::invalid_argument.
int delayMs(std::chrono::milliseconds delay, const std::string& what) {
  if (delay.count() < 0 || delay > std::chrono::seconds(1)) {
    throw std::invalid_argument(what + " must be between 0 and 1000 ms");
  }
  return static_cast<int>(delay.count());
}

QFuture<void> failedVoid(const QString& message) {
  QPromise<void> promise;
  QFuture<void> future = promise.future();
  promise.start();
  promise.setException(ServerError(message));
  promise.finish();
  return future;
}

QFuture<void> readyVoid() {
  QPromise<void> promise;
  QFuture<void> future = promise.future();
  promise.start();
  promise.finish();
  return future;
}

using ResultPromise = QPromise<Expected<std::string>>;

/// Fails `promise` with the ServerError (or cancellation) of `future`.
template <typename T>
void forwardFailure(QFuture<T>& future, const std::shared_ptr<ResultPromise>& promise) {
  future
      .onFailed([promise](const ServerError& error) {
        promise->setException(error);
        promise->finish();
        return T{};
      })
      .onFailed([promise] {
        promise->setException(ServerError(QStringLiteral("the request failed")));
        promise->finish();
        return T{};
      })
      .onCanceled([promise] {
        promise->setException(ServerError(QStringLiteral("the server stopped")));
        promise->finish();
        return T{};
      });
}

/// Completes `promise` with an outcome: the operation's result or error, or
/// a ServerError when the outcome is unknown or the server stopped.
OutcomeCallback completing(std::shared_ptr<ResultPromise> promise) {
  return [promise = std::move(promise)](Outcome outcome) {
    if (!outcome.result.ok() && (outcome.result.error().code == ErrorCode::Unavailable ||
                                 outcome.result.error().code == ErrorCode::Closed)) {
      promise->setException(ServerError(QString::fromStdString(outcome.result.error().message)));
    } else {
      promise->addResult(std::move(outcome.result));
    }
    promise->finish();
  };
}

}  // namespace

// --- Builder ---------------------------------------------------------------

Server::Builder::Builder(QString address) : m_address(std::move(address)) {}

Server::Builder& Server::Builder::withStateMachine(StateMachineFactory factory) {
  m_factory = std::move(factory);
  return *this;
}

Server::Builder& Server::Builder::withSerializer(Serializer serializer) {
  m_serializer = std::move(serializer);
  return *this;
}

Server::Builder& Server::Builder::withRegistration(Registration registration) {
  m_registrations.push_back(std::move(registration));
  return *this;
}

Server::Builder& Server::Builder::withStorage(storage::StorageLevel level, QString directory,
                                              std::uint64_t segmentBytes,
                                              std::uint64_t snapshotEntries) {
  m_level = level;
  m_directory = std::move(directory);
  m_segmentBytes = segmentBytes;
  m_snapshotEntries = snapshotEntries;
  return *this;
}

Server::Builder& Server::Builder::withElectionTimeout(std::chrono::milliseconds timeout) {
  m_electionTimeout = timeout;
  return *this;
}

Server::Builder& Server::Builder::withHeartbeatInterval(std::chrono::milliseconds interval) {
  m_heartbeatInterval = interval;
  return *this;
}

Server::Builder& Server::Builder::withSessionTimeout(std::chrono::milliseconds timeout) {
  m_sessionTimeout = timeout;
  return *this;
}

Server::Builder& Server::Builder::withOwnSyncDelay(std::chrono::milliseconds delay) {
  m_ownSyncDelay = delay;
  return *this;
}

Server::Builder& Server::Builder::withFollowerApplyDelay(std::chrono::milliseconds delay) {
  m_followerApplyDelay = delay;
  return *this;
}

Server::Builder& Server::Builder::withClusterId(std::string clusterId) {
  m_clusterId = std::move(clusterId);
  return *this;
}

Server::Builder& Server::Builder::withName(QString name) {
  m_name = std::move(name);
  return *this;
}

Server::Builder& Server::Builder::withConfig(std::function<void(ServerConfig&)> tweak) {
  m_tweaks.push_back(std::move(tweak));
  return *this;
}

std::unique_ptr<Server> Server::Builder::build() {
  if (!parseEndpoint(m_address)) {
    throw std::invalid_argument("invalid server address '" + m_address.toStdString() + "'");
  }
  if (!m_factory) throw std::invalid_argument("withStateMachine: no state machine factory");
  if (m_level == storage::StorageLevel::Disk && m_directory.isEmpty()) {
    throw std::invalid_argument("disk storage needs a directory");
  }
  if (m_heartbeatInterval.count() <= 0 || m_electionTimeout <= m_heartbeatInterval) {
    throw std::invalid_argument("the election timeout must exceed the heartbeat interval (> 0)");
  }
  auto serializer = std::make_shared<Serializer>(m_serializer);
  for (const Registration& registration : m_registrations) registration(*serializer);

  // A trial instance checks the registrations before anything starts.
  std::unique_ptr<StateMachine> trial = m_factory();
  if (!trial) throw std::invalid_argument("the state machine factory returned null");
  const std::vector<std::string> missing = trial->missingRegistrations(*serializer);
  if (!missing.empty()) {
    std::string names;
    for (const std::string& name : missing) names += (names.empty() ? "" : ", ") + name;
    throw std::invalid_argument("the state machine handles types the serializer does not know: " +
                                names);
  }

  ServerConfig config;
  config.address = m_address;
  config.id = idOf(m_address);
  config.storageLevel = m_level;
  config.dataDirectory = m_directory;
  config.segmentBytes = m_segmentBytes;
  config.snapshotEntries = m_snapshotEntries;
  config.clusterId = m_clusterId;
  if (m_sessionTimeout.count() <= 0) {
    throw std::invalid_argument("the session timeout must be positive");
  }
  config.sessionTimeoutMs = static_cast<std::uint64_t>(m_sessionTimeout.count());
  config.ownSyncDelayMs = delayMs(m_ownSyncDelay, "the leader's sync delay");
  config.followerApplyDelayMs = delayMs(m_followerApplyDelay, "the follower's apply delay");
  // One tick is the heartbeat interval, up to 50 ms; longer heartbeats span
  // several ticks.
  const auto heartbeat = static_cast<int>(m_heartbeatInterval.count());
  config.tickIntervalMs = std::min(heartbeat, 50);
  config.heartbeatTicks = std::max(1, heartbeat / config.tickIntervalMs);
  config.electionTicks =
      std::max(config.heartbeatTicks + 1,
               static_cast<int>(m_electionTimeout.count()) / config.tickIntervalMs);
  for (const auto& tweak : m_tweaks) tweak(config);
  QString name = m_name.isEmpty() ? m_address : m_name;
  return std::unique_ptr<Server>(
      new Server(std::move(config), std::move(name), m_factory, std::move(serializer)));
}

// --- Server ----------------------------------------------------------------

raft::NodeId Server::idOf(const QString& address) { return nodeIdOf(address); }

Server::Server(ServerConfig config, QString name, StateMachineFactory factory,
               std::shared_ptr<const Serializer> serializer)
    : m_config(std::move(config)),
      m_name(std::move(name)),
      m_factory(std::move(factory)),
      m_serializer(std::move(serializer)) {}

Server::~Server() { stopAll(); }

bool Server::ensureStarted(QString* error) {
  if (m_node) return true;
  std::unique_ptr<StateMachine> machine = m_factory();
  if (!machine) {
    *error = QStringLiteral("the state machine factory returned null");
    return false;
  }
  auto node = std::make_unique<ServerNode>(m_config);
  ServerNode* nodePtr = node.get();
  auto relay = std::make_shared<EventRelay>();
  auto executor = std::make_unique<StateMachineExecutor>(
      std::move(machine), m_serializer, m_config.snapshotEntries,
      [nodePtr](Index index, std::string data) { nodePtr->storeSnapshot(index, std::move(data)); },
      [relay](SessionId session, std::vector<StoredEvent> events) {
        relay->deliver(session, std::move(events));
      });
  StateMachineExecutor* exec = executor.get();
  node->setClientHandlerFactory(
      [this, exec, relay](RaftRuntime& runtime) -> std::unique_ptr<ClientHandler> {
        return std::make_unique<ClientService>(
            runtime, *exec, m_serializer, [this] { return nextTimestamp(); }, relay);
      });
  RuntimeCallbacks callbacks;
  callbacks.apply = [exec](std::vector<raft::Entry>&& entries) {
    exec->enqueueEntries(std::move(entries));
  };
  callbacks.installSnapshot = [exec](const raft::SnapshotMeta& meta, storage::SharedBytes data) {
    exec->enqueueInstall(meta.index, std::move(data));
  };
  callbacks.roleChanged = [exec](raft::Role role, raft::Term, raft::NodeId) {
    if (role != raft::Role::Leader) exec->enqueueLeadershipLost();
  };
  node->setCallbacks(std::move(callbacks));
  executor->start();
  if (!node->start()) {
    *error = node->failure();
    executor->stop();
    return false;
  }
  m_executor = std::move(executor);
  m_node = std::move(node);
  return true;
}

QFuture<void> Server::start() {
  QString error;
  if (!ensureStarted(&error)) return failedVoid(error);
  return readyVoid();
}

QFuture<void> Server::bootstrap() { return bootstrap(QStringList{m_config.address}); }

QFuture<void> Server::bootstrap(const QStringList& members) {
  std::map<raft::NodeId, QString> byId;
  for (const QString& member : members) byId[idOf(member)] = member;
  QString error;
  if (!ensureStarted(&error)) return failedVoid(error);
  return m_node->bootstrap(std::move(byId));
}

void Server::startAdminClient(const QStringList& members, std::chrono::milliseconds timeout,
                              const QString& name) {
  m_adminClient = client::Client::builder(members)
                      .withClusterId(m_config.clusterId)
                      .withTimeout(timeout)
                      .withName(name)
                      .build();
}

QFuture<void> Server::join(const QStringList& members, std::chrono::milliseconds timeout) {
  QString error;
  if (!ensureStarted(&error)) return failedVoid(error);
  for (const QString& member : members) {
    if (!parseEndpoint(member)) {
      return failedVoid(QStringLiteral("invalid member address '%1'").arg(member));
    }
  }
  if (members.isEmpty()) return failedVoid(QStringLiteral("join: no member to contact"));
  startAdminClient(members, timeout, QStringLiteral("copycat-server-join"));
  ServerNode* node = m_node.get();
  return m_adminClient->join(m_config.address)
      .then(QtFuture::Launch::Sync, [node](Expected<client::MembershipResult> result) {
        if (!result) {
          throw ServerError(QStringLiteral("cannot join the cluster: %1")
                                .arg(QString::fromStdString(result.error().message)));
        }
        std::map<raft::NodeId, QString> addresses;
        for (const client::MemberInfo& member : result->members) {
          if (!member.address.isEmpty()) addresses[member.id] = member.address;
        }
        node->learnAddresses(std::move(addresses));
      });
}

QFuture<void> Server::leave(std::chrono::milliseconds timeout) {
  if (!m_node) return failedVoid(QStringLiteral("the server is not running"));
  QStringList members;
  for (const auto& [id, address] : m_node->addresses()) {
    if (id != m_config.id) members << address;
  }
  members << m_config.address;
  startAdminClient(members, timeout, QStringLiteral("copycat-server-leave"));
  return m_adminClient->leave(m_config.address)
      .then(QtFuture::Launch::Sync, [](Expected<client::MembershipResult> result) {
        if (!result) {
          throw ServerError(QStringLiteral("cannot leave the cluster: %1")
                                .arg(QString::fromStdString(result.error().message)));
        }
      });
}

void Server::stopAll() {
  // The admin client first: its continuations use the node.
  m_adminClient.reset();
  // Then the executor: it is the only caller of storeSnapshot, which
  // must not race with the node's stop.
  if (m_executor) m_executor->stop();
  if (m_node) m_node->stop();
  m_node.reset();
  m_executor.reset();
}

QFuture<void> Server::shutdown() {
  stopAll();
  return readyVoid();
}

std::int64_t Server::nextTimestamp() {
  std::lock_guard lock(m_clockMutex);
  std::int64_t now = QDateTime::currentMSecsSinceEpoch();
  if (m_executor) now = std::max(now, m_executor->appliedTimeMs());
  m_lastTimestamp = std::max(m_lastTimestamp, now);
  return m_lastTimestamp;
}

QFuture<Expected<std::string>> Server::submit(TypeId typeId, std::string bytes,
                                              std::optional<Consistency> consistency,
                                              Index minIndex) {
  const OperationInfo* info = m_serializer->info(typeId);
  if (!info) {
    return QtFuture::makeReadyFuture(Expected<std::string>(
        Error{ErrorCode::UnknownOperation,
              "operation type id " + std::to_string(typeId) + " is not registered"}));
  }
  auto promise = std::make_shared<ResultPromise>();
  QFuture<Expected<std::string>> future = promise->future();
  promise->start();
  if (!m_node || !m_executor) {
    promise->setException(ServerError(QStringLiteral("the server is not running")));
    promise->finish();
    return future;
  }
  StateMachineExecutor* exec = m_executor.get();

  if (info->kind == OperationKind::Command) {
    std::string data = encodeLogOperation(nextTimestamp(), 0, 0, typeId, bytes);
    QFuture<raft::Index> appended =
        m_node->propose(std::move(data), [exec, promise](raft::Index index, raft::Term term) {
          exec->enqueueWaiter(index, term, completing(promise));
        });
    forwardFailure(appended, promise);
    return future;
  }

  const Consistency level = consistency.value_or(info->defaultConsistency);
  if (level == Consistency::Sequential) {
    m_node->handOutHeldEntriesSoon();
    exec->enqueueRead(minIndex, 0, 0, typeId, std::move(bytes), completing(promise));
    return future;
  }
  QFuture<raft::Index> read = m_node->readIndex(level == Consistency::LinearizableLease);
  QFuture<raft::Index> served = read.then(
      QtFuture::Launch::Sync,
      [exec, promise, typeId, minIndex, bytes = std::move(bytes)](raft::Index index) mutable {
        exec->enqueueRead(std::max(index, minIndex), 0, 0, typeId, std::move(bytes),
                          completing(promise));
        return index;
      });
  forwardFailure(served, promise);
  return future;
}

void Server::setLinkCut(raft::NodeId peer, bool cut) {
  if (m_node) m_node->setLinkCut(peer, cut);
}

std::map<raft::NodeId, QString> Server::memberAddresses() const {
  return m_node ? m_node->addresses() : std::map<raft::NodeId, QString>{};
}

std::uint64_t Server::logBytes() const { return m_node ? m_node->logBytes() : 0; }

storage::StorageCounters Server::storageCounters() const {
  return m_node ? m_node->storageCounters() : storage::StorageCounters{};
}

bool Server::isRunning() const { return m_node && m_node->isRunning(); }

bool Server::isLeader() const {
  return m_node && m_node->isRunning() && m_node->status().role == raft::Role::Leader;
}

raft::Status Server::status() const { return m_node ? m_node->status() : raft::Status{}; }

Index Server::appliedIndex() const { return m_executor ? m_executor->appliedIndex() : 0; }

std::uint64_t Server::snapshotsTaken() const {
  return m_executor ? m_executor->snapshotsTaken() : 0;
}

QString Server::failure() const {
  QString failure = m_node ? m_node->failure() : QString();
  if (failure.isEmpty() && m_executor) failure = m_executor->failure();
  return failure;
}

}  // namespace copycat::server
