#include "engine/client/shared_connection.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <utility>

#include <QTcpSocket>
#include <QTimer>

namespace copycat::client {

namespace {

QString text(const std::string& s) { return QString::fromStdString(s); }

/// The request id of a reply frame; nothing for any other frame.
std::optional<std::uint64_t> replyRequestId(const wire::Frame& frame) {
  switch (frame.body_case()) {
    case wire::Frame::kRegisterSessionReply:
      return frame.register_session_reply().request_id();
    case wire::Frame::kKeepAliveReply:
      return frame.keep_alive_reply().request_id();
    case wire::Frame::kCloseSessionReply:
      return frame.close_session_reply().request_id();
    case wire::Frame::kOperationReply:
      return frame.operation_reply().request_id();
    case wire::Frame::kStatusReply:
      return frame.status_reply().request_id();
    case wire::Frame::kMembershipReply:
      return frame.membership_reply().request_id();
    default:
      return std::nullopt;
  }
}

/// Sets the request id of a request frame.
void setRequestId(wire::Frame& frame, std::uint64_t requestId) {
  switch (frame.body_case()) {
    case wire::Frame::kRegisterSession:
      frame.mutable_register_session()->set_request_id(requestId);
      break;
    case wire::Frame::kKeepAlive:
      frame.mutable_keep_alive()->set_request_id(requestId);
      break;
    case wire::Frame::kCloseSession:
      frame.mutable_close_session()->set_request_id(requestId);
      break;
    case wire::Frame::kCommand:
      frame.mutable_command()->set_request_id(requestId);
      break;
    case wire::Frame::kQuery:
      frame.mutable_query()->set_request_id(requestId);
      break;
    case wire::Frame::kStatus:
      frame.mutable_status()->set_request_id(requestId);
      break;
    case wire::Frame::kJoin:
      frame.mutable_join()->set_request_id(requestId);
      break;
    case wire::Frame::kLeave:
      frame.mutable_leave()->set_request_id(requestId);
      break;
    case wire::Frame::kPromote:
      frame.mutable_promote()->set_request_id(requestId);
      break;
    case wire::Frame::kDemote:
      frame.mutable_demote()->set_request_id(requestId);
      break;
    default:
      break;
  }
}

struct PoolEntry {
  SharedConnection* connection = nullptr;
  std::weak_ptr<SharedConnection> owner;
};
using PoolKey = std::pair<QString, std::string>;

/// This thread's connections that are open or opening, by address and
/// cluster id. It owns nothing: the clients do.
std::map<PoolKey, PoolEntry>& pool() {
  thread_local std::map<PoolKey, PoolEntry> connections;
  return connections;
}

std::atomic<std::uint64_t> nextConnectionId{1};

}  // namespace

std::shared_ptr<SharedConnection> SharedConnection::acquire(const Settings& settings, User* user) {
  const PoolKey key{settings.address, settings.clusterId};
  auto found = pool().find(key);
  std::shared_ptr<SharedConnection> connection =
      found == pool().end() ? nullptr : found->second.owner.lock();
  if (!connection || connection->m_state == State::Closed) {
    connection.reset(new SharedConnection(settings, nextConnectionId++));
    pool()[key] = PoolEntry{connection.get(), connection};
    connection->start();
  }
  if (std::find(connection->m_users.begin(), connection->m_users.end(), user) ==
      connection->m_users.end()) {
    connection->m_users.push_back(user);
  }
  return connection;
}

SharedConnection::SharedConnection(Settings settings, std::uint64_t id)
    : m_settings(std::move(settings)), m_id(id) {}

SharedConnection::~SharedConnection() {
  forgetInPool();
  if (m_socket) {
    m_socket->disconnect();
    m_socket->abort();
    m_socket->deleteLater();
  }
}

void SharedConnection::forgetInPool() {
  auto found = pool().find(PoolKey{m_settings.address, m_settings.clusterId});
  if (found != pool().end() && found->second.connection == this) pool().erase(found);
}

void SharedConnection::start() {
  m_socket = new QTcpSocket();
  const std::weak_ptr<SharedConnection> weak = weak_from_this();
  QObject::connect(m_socket, &QTcpSocket::connected, m_socket, [this] { onConnected(); });
  QObject::connect(m_socket, &QTcpSocket::readyRead, m_socket, [this] { onReadyRead(); });
  QObject::connect(m_socket, &QTcpSocket::disconnected, m_socket, [this] {
    close(QStringLiteral("%1 closed the connection").arg(m_settings.address));
  });
  QObject::connect(m_socket, &QTcpSocket::errorOccurred, m_socket,
                   [this](QAbstractSocket::SocketError) {
                     // A refused or failed connect never emits disconnected().
                     if (m_socket->state() == QAbstractSocket::UnconnectedState) {
                       close(QStringLiteral("cannot reach %1: %2")
                                 .arg(m_settings.address, m_socket->errorString()));
                     }
                   });
  const int handshakeMs = static_cast<int>(m_settings.handshakeTimeout.count());
  QTimer::singleShot(handshakeMs, m_socket, [weak, handshakeMs] {
    const std::shared_ptr<SharedConnection> self = weak.lock();
    if (self && self->m_state != State::Open) {
      self->close(QStringLiteral("%1 did not accept the connection within %2 ms")
                      .arg(self->m_settings.address)
                      .arg(handshakeMs));
    }
  });

  const QString& address = m_settings.address;
  const qsizetype colon = address.lastIndexOf(QLatin1Char(':'));
  QString host = address.left(colon);
  if (host.startsWith(QLatin1Char('[')) && host.endsWith(QLatin1Char(']'))) {
    host = host.mid(1, host.size() - 2);
  }
  const quint16 port = static_cast<quint16>(address.mid(colon + 1).toUInt());
  if (colon <= 0 || port == 0) {
    // Reported asynchronously, like any other connection failure.
    QTimer::singleShot(0, m_socket, [weak] {
      if (const std::shared_ptr<SharedConnection> self = weak.lock()) {
        self->close(QStringLiteral("invalid address '%1'").arg(self->m_settings.address));
      }
    });
    return;
  }
  // A failure reported inside connectToHost() is passed on once the caller
  // of acquire() holds the connection.
  m_starting = true;
  m_socket->connectToHost(host, port);
  m_starting = false;
}

void SharedConnection::onConnected() {
  if (m_state != State::Connecting) return;
  // No Nagle: a request must not wait for the server's delayed ACK.
  m_socket->setSocketOption(QAbstractSocket::LowDelayOption, 1);
  wire::Frame frame;
  wire::Handshake* handshake = frame.mutable_handshake();
  handshake->set_request_id(m_nextRequestId++);
  handshake->set_protocol_version(protocol::kProtocolVersion);
  handshake->set_cluster_id(m_settings.clusterId);
  handshake->set_kind(wire::PEER_KIND_CLIENT);
  handshake->set_name(m_settings.name.toStdString());
  m_state = State::AwaitReply;
  const std::string bytes = m_encoder.encode(frame);
  m_socket->write(bytes.data(), static_cast<qint64>(bytes.size()));
}

void SharedConnection::onReadyRead() {
  if (m_state == State::Closed) return;
  // Users may release the connection while frames are handled.
  const std::shared_ptr<SharedConnection> self = shared_from_this();
  const qint64 available = m_socket->bytesAvailable();
  if (available > 0) {
    char* room = m_decoder.prepare(static_cast<std::size_t>(available));
    const qint64 read = m_socket->read(room, available);
    m_decoder.commit(static_cast<std::size_t>(std::max<qint64>(0, read)));
  }
  wire::Frame frame;
  while (m_state != State::Closed && m_decoder.next(frame)) handleFrame(frame);
  if (m_state != State::Closed && m_decoder.hasError()) {
    const std::string reply = m_encoder.encode(m_decoder.errorFrame());
    m_socket->write(reply.data(), static_cast<qint64>(reply.size()));
    m_socket->flush();
    close(QStringLiteral("bad frame from %1: %2").arg(m_settings.address, text(m_decoder.error())));
  }
}

void SharedConnection::protocolError(wire::ErrorCode code, const std::string& what) {
  const std::string bytes = m_encoder.encode(protocol::makeErrorFrame(code, what));
  m_socket->write(bytes.data(), static_cast<qint64>(bytes.size()));
  m_socket->flush();
  close(QStringLiteral("%1: %2").arg(m_settings.address, text(what)));
}

void SharedConnection::handleFrame(wire::Frame& frame) {
  switch (frame.body_case()) {
    case wire::Frame::kHandshakeReply: {
      if (m_state != State::AwaitReply) {
        protocolError(wire::ERROR_CODE_UNEXPECTED_MESSAGE, "unexpected handshake reply");
        return;
      }
      const wire::HandshakeReply& reply = frame.handshake_reply();
      if (!reply.accepted()) {
        close(QStringLiteral("%1 rejected the handshake (cluster id '%2'): %3")
                  .arg(m_settings.address, text(m_settings.clusterId), text(reply.error())));
        return;
      }
      if (reply.protocol_version() != protocol::kProtocolVersion) {
        protocolError(
            wire::ERROR_CODE_UNEXPECTED_MESSAGE,
            "the server speaks protocol version " + std::to_string(reply.protocol_version()));
        return;
      }
      m_state = State::Open;
      m_serverNodeId = reply.server_node_id();
      m_serverAddress = text(reply.server_address());
      for (PendingWaiter& waiter : std::exchange(m_waiters, {})) waiter.waiter(this, QString());
      const std::vector<User*> users = m_users;
      for (User* user : users) {
        if (m_state != State::Open) return;
        if (std::find(m_users.begin(), m_users.end(), user) != m_users.end()) {
          user->connectionOpened(*this);
        }
      }
      return;
    }
    case wire::Frame::kError:
      close(QStringLiteral("%1 closed the connection: %2 %3")
                .arg(m_settings.address, text(wire::ErrorCode_Name(frame.error().code())),
                     text(frame.error().text())));
      return;
    case wire::Frame::kSessionEvent: {
      if (m_state != State::Open) {
        protocolError(wire::ERROR_CODE_UNEXPECTED_MESSAGE,
                      "session event before the handshake reply");
        return;
      }
      const std::vector<User*> users = m_users;
      for (User* user : users) {
        if (m_state != State::Open) return;
        if (std::find(m_users.begin(), m_users.end(), user) != m_users.end()) {
          user->sessionEvent(frame.session_event());
        }
      }
      return;
    }
    default:
      break;
  }
  const std::optional<std::uint64_t> requestId = replyRequestId(frame);
  if (!requestId) {
    protocolError(wire::ERROR_CODE_UNEXPECTED_MESSAGE,
                  "unexpected " + std::string(protocol::bodyName(frame)) + " from a server");
    return;
  }
  if (m_state != State::Open) {
    protocolError(wire::ERROR_CODE_UNEXPECTED_MESSAGE,
                  std::string(protocol::bodyName(frame)) + " before the handshake reply");
    return;
  }
  auto pending = m_replies.find(*requestId);
  if (pending == m_replies.end()) return;  // a late or unknown reply
  ReplyHandler handler = std::move(pending->second.handler);
  m_replies.erase(pending);
  handler(&frame, QString());
}

bool SharedConnection::send(User* user, wire::Frame& frame, ReplyHandler&& handler) {
  const std::uint64_t requestId = m_nextRequestId++;
  setRequestId(frame, requestId);
  std::string bytes;
  if (!m_encoder.encodeTo(frame, bytes)) return false;
  m_replies.emplace(requestId, PendingReply{user, std::move(handler)});
  m_socket->write(bytes.data(), static_cast<qint64>(bytes.size()));
  return true;
}

void SharedConnection::whenOpen(User* user, Waiter waiter) {
  if (m_state == State::Open) {
    waiter(this, QString());
    return;
  }
  m_waiters.push_back(PendingWaiter{user, std::move(waiter)});
}

void SharedConnection::release(User* user, const QString& error) {
  std::erase(m_users, user);
  std::vector<ReplyHandler> replies;
  for (auto it = m_replies.begin(); it != m_replies.end();) {
    if (it->second.user == user) {
      replies.push_back(std::move(it->second.handler));
      it = m_replies.erase(it);
    } else {
      ++it;
    }
  }
  std::vector<Waiter> waiters;
  for (auto it = m_waiters.begin(); it != m_waiters.end();) {
    if (it->user == user) {
      waiters.push_back(std::move(it->waiter));
      it = m_waiters.erase(it);
    } else {
      ++it;
    }
  }
  if (m_users.empty() && m_state != State::Closed) {
    m_state = State::Closed;
    forgetInPool();
    m_socket->disconnect();
    m_socket->abort();
  }
  for (ReplyHandler& handler : replies) handler(nullptr, error);
  for (Waiter& waiter : waiters) waiter(nullptr, error);
}

void SharedConnection::close(const QString& error) {
  if (m_state == State::Closed) return;
  if (m_starting) {
    QTimer::singleShot(0, m_socket, [weak = weak_from_this(), error] {
      if (const std::shared_ptr<SharedConnection> self = weak.lock()) self->close(error);
    });
    return;
  }
  const std::shared_ptr<SharedConnection> self = shared_from_this();
  m_state = State::Closed;
  forgetInPool();
  m_socket->disconnect();
  m_socket->abort();
  const std::vector<User*> users = std::exchange(m_users, {});
  std::map<std::uint64_t, PendingReply> replies = std::exchange(m_replies, {});
  std::vector<PendingWaiter> waiters = std::exchange(m_waiters, {});
  for (User* user : users) {
    user->connectionClosed(*this, error);
    for (auto& [requestId, pending] : replies) {
      if (pending.user == user && pending.handler)
        std::exchange(pending.handler, {})(nullptr, error);
    }
    for (PendingWaiter& waiter : waiters) {
      if (waiter.user == user && waiter.waiter) std::exchange(waiter.waiter, {})(nullptr, error);
    }
  }
}

}  // namespace copycat::client
