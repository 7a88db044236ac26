#include "engine/server/peer_transport.h"

#include <utility>

#include <QRandomGenerator>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTimer>

#include "engine/protocol/convert.h"
#include "engine/server/logging.h"

namespace copycat::server {

namespace wire = copycat::wire;

namespace {

/// A peer whose send buffer holds this much is treated as unreachable: Raft
/// retries later instead of the buffer growing without bound.
constexpr qint64 kMaxBufferedBytes = 32 * 1024 * 1024;
/// The encoding buffer is kept between messages up to this size.
constexpr std::size_t kKeptSendBufferBytes = 4u << 20;
/// A connection being closed is aborted if it has not finished by then.
constexpr int kCloseGraceMs = 2000;
/// An accepted connection that has not sent its handshake by then is closed.
constexpr int kHandshakeTimeoutMs = 10000;

}  // namespace

struct PeerTransport::Connection {
  enum class State { Connecting, AwaitHandshake, AwaitReply, Open, Closing };

  QTcpSocket* socket = nullptr;
  protocol::FrameDecoder decoder;
  bool outgoing = false;
  State state = State::Connecting;
  raft::NodeId peer = raft::kNoNode;
  /// Non-zero for an accepted client connection.
  quint64 client = 0;

  ~Connection() {
    if (socket) {
      socket->disconnect();
      socket->deleteLater();
    }
  }
};

PeerTransport::PeerTransport(const ServerConfig& config, QObject* parent)
    : QObject(parent), m_config(config) {
  m_peers = config.peers;
  m_peers.erase(config.id);
}

PeerTransport::~PeerTransport() {
  m_stopped = true;
  m_outgoing.clear();
  m_connections.clear();
}

bool PeerTransport::start() {
  const std::optional<Endpoint> own = parseEndpoint(m_config.address);
  if (!own) {
    m_error = QStringLiteral("invalid address '%1' (expected host:port)").arg(m_config.address);
    return false;
  }
  m_own = *own;
  m_server = new QTcpServer(this);
  if (!m_server->listen(m_own.host, m_own.port)) {
    m_error =
        QStringLiteral("cannot listen on %1: %2").arg(m_config.address, m_server->errorString());
    return false;
  }
  connect(m_server, &QTcpServer::newConnection, this, &PeerTransport::acceptPending);
  for (const auto& [peer, address] : m_peers) openOutgoing(peer);
  return true;
}

void PeerTransport::stop() {
  if (m_stopped) return;
  m_stopped = true;
  if (m_server) m_server->close();
  const wire::Frame bye = protocol::makeErrorFrame(wire::ERROR_CODE_SHUTTING_DOWN, "shutting down");
  std::map<Connection*, std::shared_ptr<Connection>> connections;
  connections.swap(m_connections);
  m_outgoing.clear();
  m_clients.clear();
  for (auto& [raw, connection] : connections) {
    connection->socket->disconnect(this);
    if (connection->state == Connection::State::Open) writeFrame(raw, bye);
    connection->socket->flush();
    connection->socket->abort();
  }
}

quint16 PeerTransport::listenPort() const { return m_server ? m_server->serverPort() : 0; }

void PeerTransport::setPeers(const std::map<raft::NodeId, QString>& peers) {
  std::map<raft::NodeId, QString> next = peers;
  next.erase(m_config.id);
  for (const auto& [peer, address] : m_peers) {
    auto found = next.find(peer);
    if (found != next.end() && found->second == address) continue;
    auto outgoing = m_outgoing.find(peer);
    if (outgoing != m_outgoing.end()) {
      Connection* connection = outgoing->second;
      m_outgoing.erase(outgoing);
      m_connections.erase(connection);
    }
  }
  m_peers = std::move(next);
  if (m_stopped || !m_server) return;
  for (const auto& [peer, address] : m_peers) {
    if (!m_outgoing.count(peer)) openOutgoing(peer);
  }
}

void PeerTransport::setLinkCut(raft::NodeId peer, bool cut) {
  if (cut) {
    m_cutLinks.insert(peer);
  } else {
    m_cutLinks.erase(peer);
  }
}

bool PeerTransport::send(raft::Message&& message) {
  if (m_stopped) return false;
  if (m_cutLinks.count(message.to)) return true;  // lost on the cut link
  auto found = m_outgoing.find(message.to);
  if (found == m_outgoing.end() || found->second->state != Connection::State::Open) return false;
  Connection* connection = found->second;
  if (connection->socket->bytesToWrite() > kMaxBufferedBytes) return false;
  // One buffer for every message: snapshot chunks and large appends are
  // encoded without a fresh allocation each.
  m_sendBuffer.clear();
  if (!m_encoder.encodeTo(protocol::toFrame(std::move(message)), m_sendBuffer)) {
    qCWarning(lcServer) << "node" << m_config.id << "cannot encode a message to" << connection->peer
                        << "(over the frame size limit); dropped";
    return false;
  }
  queueWrite(connection, m_sendBuffer.data(), static_cast<qint64>(m_sendBuffer.size()));
  if (m_sendBuffer.capacity() > kKeptSendBufferBytes) std::string().swap(m_sendBuffer);
  return true;
}

bool PeerTransport::isConnected(raft::NodeId peer) const {
  auto found = m_outgoing.find(peer);
  return found != m_outgoing.end() && found->second->state == Connection::State::Open;
}

std::vector<raft::NodeId> PeerTransport::connectedPeers() const {
  std::vector<raft::NodeId> peers;
  for (const auto& [peer, connection] : m_outgoing) {
    if (connection->state == Connection::State::Open) peers.push_back(peer);
  }
  return peers;
}

void PeerTransport::acceptPending() {
  while (m_server->hasPendingConnections()) {
    QTcpSocket* socket = m_server->nextPendingConnection();
    if (m_stopped) {
      socket->abort();
      socket->deleteLater();
      continue;
    }
    socket->setParent(this);
    // No Nagle: small replies must not wait for the peer's delayed ACK.
    socket->setSocketOption(QAbstractSocket::LowDelayOption, 1);
    auto connection = std::make_shared<Connection>();
    connection->socket = socket;
    connection->outgoing = false;
    connection->state = Connection::State::AwaitHandshake;
    Connection* raw = connection.get();
    m_connections.emplace(raw, std::move(connection));
    connect(socket, &QTcpSocket::readyRead, this, [this, raw] { onReadyRead(raw); });
    connect(socket, &QTcpSocket::disconnected, this, [this, raw] { onDisconnected(raw); });
    QTimer::singleShot(kHandshakeTimeoutMs, socket, [this, raw, socket] {
      if (m_connections.count(raw) && raw->socket == socket &&
          raw->state == Connection::State::AwaitHandshake) {
        reject(raw, wire::ERROR_CODE_UNEXPECTED_MESSAGE, "no handshake within the time limit");
      }
    });
    // Data may have arrived before the signals were connected.
    if (socket->bytesAvailable() > 0) onReadyRead(raw);
  }
}

void PeerTransport::openOutgoing(raft::NodeId peer) {
  if (m_stopped || m_outgoing.count(peer)) return;
  auto address = m_peers.find(peer);
  if (address == m_peers.end()) return;
  const std::optional<Endpoint> endpoint = parseEndpoint(address->second);
  if (!endpoint) {
    qCWarning(lcServer) << "node" << m_config.id << ": invalid address" << address->second
                        << "for peer" << peer;
    return;
  }
  auto* socket = new QTcpSocket(this);
  auto connection = std::make_shared<Connection>();
  connection->socket = socket;
  connection->outgoing = true;
  connection->state = Connection::State::Connecting;
  connection->peer = peer;
  Connection* raw = connection.get();
  m_connections.emplace(raw, std::move(connection));
  m_outgoing[peer] = raw;

  connect(socket, &QTcpSocket::connected, this, [this, raw] {
    if (!m_connections.count(raw)) return;
    raw->socket->setSocketOption(QAbstractSocket::LowDelayOption, 1);
    wire::Frame frame;
    wire::Handshake* handshake = frame.mutable_handshake();
    handshake->set_request_id(m_nextRequestId++);
    handshake->set_protocol_version(protocol::kProtocolVersion);
    handshake->set_cluster_id(m_config.clusterId);
    handshake->set_kind(wire::PEER_KIND_SERVER);
    handshake->set_node_id(m_config.id);
    handshake->set_address(m_config.address.toStdString());
    raw->state = Connection::State::AwaitReply;
    writeFrame(raw, frame);
  });
  connect(socket, &QTcpSocket::readyRead, this, [this, raw] { onReadyRead(raw); });
  connect(socket, &QTcpSocket::disconnected, this, [this, raw] { onDisconnected(raw); });
  connect(socket, &QTcpSocket::errorOccurred, this, [this, raw](QAbstractSocket::SocketError) {
    // A refused or failed connect never emits disconnected().
    if (m_connections.count(raw) && raw->socket->state() == QAbstractSocket::UnconnectedState) {
      onDisconnected(raw);
    }
  });
  // From our own address: a firewall rule on it then cuts this link too.
  if (!socket->bind(m_own.host, 0)) {
    qCWarning(lcServer) << "node" << m_config.id << "cannot bind an outgoing socket to"
                        << m_own.host.toString() << ":" << socket->errorString();
    if (m_connections.count(raw)) onDisconnected(raw);
    return;
  }
  socket->connectToHost(endpoint->host, endpoint->port);
}

void PeerTransport::scheduleReconnect(raft::NodeId peer) {
  int& backoff = m_backoffMs[peer];
  backoff = backoff == 0 ? m_config.reconnectMinMs : std::min(backoff * 2, m_config.reconnectMaxMs);
  QTimer::singleShot(backoff, this, [this, peer] {
    if (!m_stopped && m_peers.count(peer) && !m_outgoing.count(peer)) openOutgoing(peer);
  });
}

void PeerTransport::onReadyRead(Connection* connection) {
  auto found = m_connections.find(connection);
  if (found == m_connections.end()) return;
  // Keeps the connection alive while its frames are handled, even if it is
  // closed meanwhile.
  std::shared_ptr<Connection> keep = found->second;
  if (connection->state == Connection::State::Closing) {
    connection->socket->skip(connection->socket->bytesAvailable());
    return;
  }
  // Straight from the socket's buffer into the decoder's.
  for (qint64 available = connection->socket->bytesAvailable(); available > 0;
       available = connection->socket->bytesAvailable()) {
    char* into = connection->decoder.prepare(static_cast<std::size_t>(available));
    const qint64 read = connection->socket->read(into, available);
    connection->decoder.commit(read > 0 ? static_cast<std::size_t>(read) : 0);
    if (read <= 0) break;
  }
  wire::Frame frame;
  while (!m_stopped && connection->state != Connection::State::Closing &&
         connection->decoder.next(frame)) {
    if (!handleFrame(connection, frame)) return;
  }
  if (connection->decoder.hasError() && connection->state != Connection::State::Closing) {
    ++m_rejected;
    qCWarning(lcServer) << "node" << m_config.id << ": bad frame from"
                        << connection->socket->peerAddress().toString() << ":"
                        << QString::fromStdString(connection->decoder.error());
    writeFrame(connection, connection->decoder.errorFrame());
    closeConnection(connection);
  }
}

void PeerTransport::onDisconnected(Connection* connection) {
  auto found = m_connections.find(connection);
  if (found == m_connections.end()) return;
  std::shared_ptr<Connection> keep = found->second;
  m_connections.erase(found);
  const bool wasOpen = connection->state == Connection::State::Open;
  connection->state = Connection::State::Closing;
  forgetClient(connection);
  if (!connection->outgoing) return;
  const raft::NodeId peer = connection->peer;
  auto outgoing = m_outgoing.find(peer);
  // closeConnection() already handled a connection that we closed.
  if (outgoing == m_outgoing.end() || outgoing->second != connection) return;
  m_outgoing.erase(outgoing);
  if (wasOpen) emit peerDisconnected(peer);
  if (!m_stopped && m_peers.count(peer)) scheduleReconnect(peer);
}

bool PeerTransport::handleFrame(Connection* connection, wire::Frame& frame) {
  using State = Connection::State;
  if (frame.body_case() == wire::Frame::kError) {
    const QString text = QString::fromStdString(frame.error().text());
    if (frame.error().code() == wire::ERROR_CODE_SHUTTING_DOWN) {
      qCInfo(lcServer) << "node" << m_config.id << ": peer" << connection->peer
                       << "is shutting down";
    } else {
      qCWarning(lcServer) << "node" << m_config.id << ": connection"
                          << (connection->outgoing ? "to" : "from") << connection->peer
                          << "closed by the other side:" << text;
    }
    closeConnection(connection);
    return false;
  }
  if (!connection->outgoing) {
    if (connection->state == State::AwaitHandshake) {
      if (frame.body_case() != wire::Frame::kHandshake) {
        reject(connection, wire::ERROR_CODE_UNEXPECTED_MESSAGE,
               "expected a handshake, got " + std::string(protocol::bodyName(frame)));
        return false;
      }
      return handleHandshake(connection, frame.handshake());
    }
    if (connection->client != 0) return handleClientFrame(connection, frame);
    if (frame.body_case() == wire::Frame::kRaft) {
      deliver(connection, std::move(*frame.mutable_raft()));
      return !m_stopped && m_connections.count(connection);
    }
    reject(connection, wire::ERROR_CODE_UNEXPECTED_MESSAGE,
           "unexpected " + std::string(protocol::bodyName(frame)) + " on a server connection");
    return false;
  }
  if (connection->state == State::AwaitReply) {
    if (frame.body_case() != wire::Frame::kHandshakeReply) {
      reject(connection, wire::ERROR_CODE_UNEXPECTED_MESSAGE,
             "expected a handshake reply, got " + std::string(protocol::bodyName(frame)));
      return false;
    }
    const wire::HandshakeReply& reply = frame.handshake_reply();
    if (!reply.accepted()) {
      qCWarning(lcServer) << "node" << m_config.id << ": peer" << connection->peer
                          << "refused the handshake:" << QString::fromStdString(reply.error());
      closeConnection(connection);
      return false;
    }
    if (reply.server_node_id() != connection->peer) {
      reject(connection, wire::ERROR_CODE_INVALID_MESSAGE,
             "expected node " + std::to_string(connection->peer) + ", reached node " +
                 std::to_string(reply.server_node_id()));
      return false;
    }
    connection->state = State::Open;
    m_backoffMs[connection->peer] = 0;
    emit peerConnected(connection->peer);
    return !m_stopped && m_connections.count(connection);
  }
  if (frame.body_case() == wire::Frame::kRaft) {
    deliver(connection, std::move(*frame.mutable_raft()));
    return !m_stopped && m_connections.count(connection);
  }
  reject(connection, wire::ERROR_CODE_UNEXPECTED_MESSAGE,
         "unexpected " + std::string(protocol::bodyName(frame)) + " on a server connection");
  return false;
}

bool PeerTransport::handleHandshake(Connection* connection, const wire::Handshake& handshake) {
  wire::Frame frame;
  wire::HandshakeReply* reply = frame.mutable_handshake_reply();
  reply->set_request_id(handshake.request_id());
  reply->set_server_node_id(m_config.id);
  reply->set_protocol_version(protocol::kProtocolVersion);
  reply->set_server_address(m_config.address.toStdString());

  wire::ErrorCode code = wire::ERROR_CODE_UNSPECIFIED;
  std::string why;
  if (handshake.protocol_version() != protocol::kProtocolVersion) {
    code = wire::ERROR_CODE_UNSUPPORTED_VERSION;
    why = "unsupported protocol version " + std::to_string(handshake.protocol_version()) +
          " (this server speaks " + std::to_string(protocol::kProtocolVersion) + ")";
  } else if (handshake.cluster_id() != m_config.clusterId) {
    code = wire::ERROR_CODE_WRONG_CLUSTER;
    why = "wrong cluster id '" + handshake.cluster_id() + "' (this server belongs to '" +
          m_config.clusterId + "')";
  } else if (handshake.kind() == wire::PEER_KIND_CLIENT) {
    // Accepted below.
  } else if (handshake.kind() != wire::PEER_KIND_SERVER) {
    code = wire::ERROR_CODE_INVALID_MESSAGE;
    why = "unknown peer kind " + std::to_string(handshake.kind());
  } else if (handshake.node_id() == raft::kNoNode || handshake.node_id() == m_config.id) {
    code = wire::ERROR_CODE_INVALID_MESSAGE;
    why = "invalid node id " + std::to_string(handshake.node_id());
  }
  if (code != wire::ERROR_CODE_UNSPECIFIED) {
    reply->set_accepted(false);
    reply->set_error(why);
    writeFrame(connection, frame);
    reject(connection, code, why);
    return false;
  }
  reply->set_accepted(true);
  if (handshake.kind() == wire::PEER_KIND_CLIENT) {
    connection->client = m_nextClientId++;
    connection->state = Connection::State::Open;
    m_clients[connection->client] = connection;
    writeFrame(connection, frame);
    return true;
  }
  connection->peer = handshake.node_id();
  connection->state = Connection::State::Open;
  writeFrame(connection, frame);
  // A server not in our list (for example one that joins later) is reached at
  // the address it advertises.
  if (!m_peers.count(connection->peer) &&
      parseEndpoint(QString::fromStdString(handshake.address()))) {
    m_peers[connection->peer] = QString::fromStdString(handshake.address());
    emit peerAddressLearned(connection->peer, m_peers[connection->peer]);
    openOutgoing(connection->peer);
  }
  return true;
}

bool PeerTransport::handleClientFrame(Connection* connection, wire::Frame& frame) {
  switch (frame.body_case()) {
    case wire::Frame::kRegisterSession:
    case wire::Frame::kKeepAlive:
    case wire::Frame::kCloseSession:
    case wire::Frame::kCommand:
    case wire::Frame::kQuery:
    case wire::Frame::kStatus:
    case wire::Frame::kJoin:
    case wire::Frame::kLeave:
    case wire::Frame::kPromote:
    case wire::Frame::kDemote:
      if (m_clientFrames) m_clientFrames(connection->client, frame);
      return !m_stopped && m_connections.count(connection) &&
             connection->state == Connection::State::Open;
    default:
      reject(connection, wire::ERROR_CODE_UNEXPECTED_MESSAGE,
             "unexpected " + std::string(protocol::bodyName(frame)) + " on a client connection");
      return false;
  }
}

bool PeerTransport::sendToClient(quint64 client, const wire::Frame& frame) {
  auto found = m_clients.find(client);
  if (m_stopped || found == m_clients.end()) return false;
  Connection* connection = found->second;
  if (connection->state != Connection::State::Open ||
      connection->socket->bytesToWrite() > kMaxBufferedBytes) {
    return false;
  }
  if (m_config.clientReplyDropRate > 0 && frame.body_case() == wire::Frame::kOperationReply &&
      QRandomGenerator::global()->generateDouble() < m_config.clientReplyDropRate) {
    return true;  // the test fault layer lost it on the way
  }
  writeFrame(connection, frame);
  return true;
}

void PeerTransport::closeClient(quint64 client) {
  auto found = m_clients.find(client);
  if (found == m_clients.end()) return;
  closeConnection(found->second);
}

void PeerTransport::forgetClient(Connection* connection) {
  if (connection->client == 0) return;
  const quint64 client = connection->client;
  connection->client = 0;
  if (m_clients.erase(client) != 0 && m_clientClosed && !m_stopped) m_clientClosed(client);
}

void PeerTransport::deliver(Connection* connection, wire::RaftMessage&& wireMessage) {
  std::string error;
  std::optional<raft::Message> message = protocol::fromWire(std::move(wireMessage), &error);
  if (!message) {
    reject(connection, wire::ERROR_CODE_INVALID_MESSAGE, "invalid raft message: " + error);
    return;
  }
  if (message->from != connection->peer || message->to != m_config.id) {
    reject(connection, wire::ERROR_CODE_INVALID_MESSAGE,
           "raft message from " + std::to_string(message->from) + " to " +
               std::to_string(message->to) + " on the connection with node " +
               std::to_string(connection->peer));
    return;
  }
  if (m_cutLinks.count(message->from)) return;  // lost on the cut link
  if (m_handler) m_handler(std::move(*message));
}

void PeerTransport::writeFrame(Connection* connection, const wire::Frame& frame) {
  const std::string bytes = m_encoder.encode(frame);
  if (bytes.empty()) return;
  queueWrite(connection, bytes.data(), static_cast<qint64>(bytes.size()));
}

void PeerTransport::queueWrite(Connection* connection, const char* data, qint64 size) {
  // A socket with nothing buffered is not in the list yet: each appears once.
  if (connection->socket->bytesToWrite() == 0) m_unflushed.emplace_back(connection->socket);
  connection->socket->write(data, size);
}

void PeerTransport::flushWrites() {
  std::vector<QPointer<QTcpSocket>> sockets;
  sockets.swap(m_unflushed);
  for (const QPointer<QTcpSocket>& socket : sockets) {
    if (socket) socket->flush();
  }
}

void PeerTransport::reject(Connection* connection, wire::ErrorCode code, const std::string& text) {
  ++m_rejected;
  qCWarning(lcServer) << "node" << m_config.id << ": closing the connection"
                      << (connection->outgoing ? "to" : "from")
                      << connection->socket->peerAddress().toString() << ":"
                      << QString::fromStdString(text);
  writeFrame(connection, protocol::makeErrorFrame(code, text));
  closeConnection(connection);
}

void PeerTransport::closeConnection(Connection* connection) {
  if (connection->state == Connection::State::Closing) return;
  const bool wasOpen = connection->state == Connection::State::Open;
  connection->state = Connection::State::Closing;
  forgetClient(connection);
  if (connection->outgoing) {
    auto outgoing = m_outgoing.find(connection->peer);
    if (outgoing != m_outgoing.end() && outgoing->second == connection) {
      m_outgoing.erase(outgoing);
      if (wasOpen) emit peerDisconnected(connection->peer);
      if (!m_stopped && m_peers.count(connection->peer)) scheduleReconnect(connection->peer);
    }
  }
  QTcpSocket* socket = connection->socket;
  QTimer::singleShot(kCloseGraceMs, socket, [socket] { socket->abort(); });
  socket->disconnectFromHost();
}

}  // namespace copycat::server
