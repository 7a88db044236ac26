#include "engine/client/client.h"

#include <stdexcept>
#include <utility>

#include <QHostAddress>
#include <QPromise>
#include <QThread>

#include "engine/client/client_core.h"

namespace copycat::client {

namespace {

template <class T>
PromisePtr<T> startedPromise() {
  auto promise = std::make_shared<QPromise<T>>();
  promise->start();
  return promise;
}

}  // namespace

bool isValidAddress(const QString& address) {
  const qsizetype colon = address.lastIndexOf(QLatin1Char(':'));
  if (colon <= 0 || colon == address.size() - 1) return false;
  QString host = address.left(colon);
  if (host.startsWith(QLatin1Char('[')) && host.endsWith(QLatin1Char(']'))) {
    host = host.mid(1, host.size() - 2);
  } else if (host.contains(QLatin1Char(':'))) {
    return false;
  }
  bool ok = false;
  const uint port = address.mid(colon + 1).toUInt(&ok);
  if (!ok || port == 0 || port > 65535) return false;
  if (host == QLatin1String("localhost")) return true;
  QHostAddress parsed;
  return parsed.setAddress(host);
}

ConnectionStrategy ConnectionStrategy::once() {
  ConnectionStrategy strategy;
  strategy.retry = false;
  return strategy;
}

ConnectionStrategy ConnectionStrategy::exponentialBackoff(std::chrono::milliseconds initial,
                                                          std::chrono::milliseconds max) {
  ConnectionStrategy strategy;
  strategy.retry = true;
  strategy.initialDelay = std::max(std::chrono::milliseconds(1), initial);
  strategy.maxDelay = std::max(strategy.initialDelay, max);
  return strategy;
}

std::optional<std::chrono::milliseconds> ConnectionStrategy::delayAfterRound(int round) const {
  if (!retry) return std::nullopt;
  std::chrono::milliseconds delay = initialDelay;
  for (int i = 1; i < round && delay < maxDelay; ++i) delay *= 2;
  return std::min(delay, maxDelay);
}

Client::Builder::Builder(QStringList members) : m_members(std::move(members)) {}

Client::Builder& Client::Builder::withConnectionStrategy(ConnectionStrategy strategy) {
  m_connection = strategy;
  return *this;
}

Client::Builder& Client::Builder::withRecoveryStrategy(RecoveryStrategy strategy) {
  m_recovery = strategy;
  return *this;
}

Client::Builder& Client::Builder::withServerSelection(ServerSelection selection) {
  m_selection = selection;
  return *this;
}

Client::Builder& Client::Builder::withSessionTimeout(std::chrono::milliseconds timeout) {
  m_sessionTimeout = timeout;
  return *this;
}

Client::Builder& Client::Builder::withTimeout(std::chrono::milliseconds timeout) {
  m_timeout = timeout;
  return *this;
}

Client::Builder& Client::Builder::withSerializer(Serializer serializer) {
  m_serializer = std::move(serializer);
  return *this;
}

Client::Builder& Client::Builder::withRegistration(Registration registration) {
  m_registrations.push_back(std::move(registration));
  return *this;
}

Client::Builder& Client::Builder::withClusterId(std::string clusterId) {
  m_clusterId = std::move(clusterId);
  return *this;
}

Client::Builder& Client::Builder::withName(QString name) {
  m_name = std::move(name);
  return *this;
}

Client::Builder& Client::Builder::withEventThread(std::shared_ptr<ClientThread> thread) {
  m_thread = std::move(thread);
  return *this;
}

ClientThread::ClientThread() : m_thread(std::make_unique<QThread>()) {
  m_thread->setObjectName(QStringLiteral("copycat-client"));
  m_thread->start();
}

ClientThread::~ClientThread() {
  m_thread->quit();
  m_thread->wait();
}

std::unique_ptr<Client> Client::Builder::build() {
  if (m_members.isEmpty())
    throw std::invalid_argument("a client needs at least one member address");
  for (const QString& member : m_members) {
    if (!isValidAddress(member)) {
      throw std::invalid_argument("invalid member address '" + member.toStdString() +
                                  "' (expected host:port)");
    }
  }
  if (m_timeout.count() <= 0) throw std::invalid_argument("the timeout must be positive");
  if (m_sessionTimeout.count() < 0) {
    throw std::invalid_argument("the session timeout must not be negative");
  }
  return std::unique_ptr<Client>(new Client(*this));
}

Client::Client(Builder& builder) {
  auto serializer = std::make_shared<Serializer>(std::move(builder.m_serializer));
  for (const Registration& registration : builder.m_registrations) registration(*serializer);
  m_serializer = serializer;

  ClientOptions options;
  options.members = builder.m_members;
  options.connection = builder.m_connection;
  options.recovery = builder.m_recovery;
  options.selection = builder.m_selection;
  options.sessionTimeout = builder.m_sessionTimeout;
  options.timeout = builder.m_timeout;
  options.clusterId = builder.m_clusterId;
  options.name = builder.m_name;

  m_thread = builder.m_thread ? builder.m_thread : std::make_shared<ClientThread>();
  m_core = new ClientCore(std::move(options));
  m_core->moveToThread(m_thread->thread());
}

Client::~Client() {
  QMetaObject::invokeMethod(
      m_core,
      [core = m_core] {
        core->shutdown();
        core->deleteLater();
      },
      Qt::BlockingQueuedConnection);
}

QFuture<Expected<void>> Client::connect() {
  auto promise = startedPromise<Expected<void>>();
  QFuture<Expected<void>> future = promise->future();
  QMetaObject::invokeMethod(
      m_core, [core = m_core, promise] { core->connectSession(promise); }, Qt::QueuedConnection);
  return future;
}

QFuture<Expected<void>> Client::close() {
  auto promise = startedPromise<Expected<void>>();
  QFuture<Expected<void>> future = promise->future();
  QMetaObject::invokeMethod(
      m_core, [core = m_core, promise] { core->closeSession(promise); }, Qt::QueuedConnection);
  return future;
}

QFuture<Expected<std::string>> Client::submit(TypeId typeId, std::string bytes,
                                              std::optional<Consistency> consistency) {
  return submitIndexed(typeId, std::move(bytes), consistency)
      .then(QtFuture::Launch::Sync,
            [](Expected<Indexed<std::string>> result) -> Expected<std::string> {
              if (!result) return result.error();
              return std::move(result->value);
            });
}

QFuture<Expected<Indexed<std::string>>> Client::submitIndexed(
    TypeId typeId, std::string bytes, std::optional<Consistency> consistency) {
  using Result = Expected<Indexed<std::string>>;
  const OperationInfo* info = m_serializer->info(typeId);
  if (!info) {
    return QtFuture::makeReadyFuture(Result(Error{
        ErrorCode::UnknownOperation,
        "type id " + std::to_string(typeId) + " is not registered with the client's serializer"}));
  }
  const OperationKind kind = info->kind;
  const Consistency level = consistency.value_or(info->defaultConsistency);
  auto promise = startedPromise<Result>();
  QFuture<Result> future = promise->future();
  QMetaObject::invokeMethod(
      m_core,
      [core = m_core, typeId, bytes = std::move(bytes), kind, level, promise]() mutable {
        core->submit(typeId, std::move(bytes), kind, level, promise);
      },
      Qt::QueuedConnection);
  return future;
}

void Client::onEvent(std::string name, EventHandler handler) {
  m_core->addEventHandler(std::move(name), std::move(handler));
}

SessionId Client::session() const { return m_core->session(); }

Index Client::lastIndex() const { return m_core->lastIndex(); }

namespace {

Error invalidAddress(const QString& address) {
  return Error{ErrorCode::MalformedOperation, "invalid address '" + address.toStdString() + "'"};
}

}  // namespace

QFuture<Expected<ServerStatus>> Client::status(QString address) {
  using Result = Expected<ServerStatus>;
  if (!isValidAddress(address)) return QtFuture::makeReadyFuture(Result(invalidAddress(address)));
  auto promise = startedPromise<Result>();
  QFuture<Result> future = promise->future();
  QMetaObject::invokeMethod(
      m_core,
      [core = m_core, address = std::move(address), promise] { core->status(address, promise); },
      Qt::QueuedConnection);
  return future;
}

QFuture<Expected<std::vector<ServerStatus>>> Client::statusAll() {
  auto promise = startedPromise<Expected<std::vector<ServerStatus>>>();
  QFuture<Expected<std::vector<ServerStatus>>> future = promise->future();
  QMetaObject::invokeMethod(
      m_core, [core = m_core, promise] { core->statusAll(promise); }, Qt::QueuedConnection);
  return future;
}

QFuture<Expected<MembershipResult>> Client::join(QString address) {
  return changeMembership(MembershipChange::Join, std::move(address));
}

QFuture<Expected<MembershipResult>> Client::leave(QString address) {
  return changeMembership(MembershipChange::Leave, std::move(address));
}

QFuture<Expected<MembershipResult>> Client::promote(QString address) {
  return changeMembership(MembershipChange::Promote, std::move(address));
}

QFuture<Expected<MembershipResult>> Client::demote(QString address) {
  return changeMembership(MembershipChange::Demote, std::move(address));
}

QFuture<Expected<MembershipResult>> Client::changeMembership(MembershipChange change,
                                                             QString address) {
  using Result = Expected<MembershipResult>;
  if (!isValidAddress(address)) return QtFuture::makeReadyFuture(Result(invalidAddress(address)));
  auto promise = startedPromise<Result>();
  QFuture<Result> future = promise->future();
  QMetaObject::invokeMethod(
      m_core,
      [core = m_core, change, address = std::move(address), promise] {
        core->membership(change, address, promise);
      },
      Qt::QueuedConnection);
  return future;
}

}  // namespace copycat::client
