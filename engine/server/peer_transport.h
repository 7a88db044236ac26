#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <QObject>
#include <QPointer>
#include <QString>

#include "engine/protocol/framing.h"
#include "engine/raft/types.h"
#include "engine/server/server_config.h"

class QTcpServer;
class QTcpSocket;

namespace copycat::server {

/// The server-to-server links of one node over TCP (copycat.proto), and the
/// client connections accepted on the same port.
///
/// It listens on the node's address and keeps one outgoing connection per
/// peer, opened from the node's own address (bind, then connect) and started
/// with a Handshake. Raft messages go out on the outgoing connection; they
/// come in on any accepted connection and on replies over outgoing ones. A
/// message for a peer that is not connected is dropped (Raft retries) and
/// send() says so, so the runtime can report the peer unreachable. Lost
/// connections are reopened with exponential backoff.
///
/// Every byte read goes through a FrameDecoder. A bad frame, a message that
/// does not convert or is not allowed at that point, or a handshake of
/// another cluster or protocol version closes THAT connection only, after an
/// ErrorFrame (or a rejecting HandshakeReply).
///
/// A connection whose handshake says PEER_KIND_CLIENT gets a connection id;
/// its client requests go to the client handler, which answers with
/// sendToClient(). Lives on the runtime's thread; not thread-safe.
class PeerTransport : public QObject {
  Q_OBJECT

 public:
  using MessageHandler = std::function<void(raft::Message&&)>;
  /// A request frame (any client body) on client connection `connection`.
  using ClientFrameHandler = std::function<void(quint64 connection, wire::Frame& frame)>;
  /// Client connection `connection` is gone.
  using ClientClosedHandler = std::function<void(quint64 connection)>;

  PeerTransport(const ServerConfig& config, QObject* parent = nullptr);
  ~PeerTransport() override;

  /// Listens on the configured address and starts connecting to the peers.
  /// Returns false (see errorString()) when the address cannot be listened on.
  bool start();
  /// Sends ErrorFrame(SHUTTING_DOWN) on open connections and closes everything.
  void stop();

  /// Replaces the set of peers (id -> "host:port"); connections to removed
  /// peers are closed, new ones are opened.
  void setPeers(const std::map<raft::NodeId, QString>& peers);
  void setMessageHandler(MessageHandler handler) { m_handler = std::move(handler); }
  void setClientHandlers(ClientFrameHandler frames, ClientClosedHandler closed) {
    m_clientFrames = std::move(frames);
    m_clientClosed = std::move(closed);
  }

  /// Queues `frame` on client connection `connection`; false when it is gone
  /// or its send buffer is full. A test fault layer may drop
  /// OperationReply frames (ServerConfig::clientReplyDropRate).
  bool sendToClient(quint64 connection, const wire::Frame& frame);
  /// Closes client connection `connection` (after the queued frames).
  void closeClient(quint64 connection);
  std::size_t clientCount() const { return m_clients.size(); }

  /// Queues `message` on the connection to message.to. Returns false when it
  /// was dropped (peer unknown, not connected, or its send buffer is full).
  bool send(raft::Message&& message);

  /// Fault injection (tests, the Lab): while a link is cut, every Raft
  /// message to and from `peer` is dropped as if the network lost it; the
  /// connections stay up. Client connections are not affected.
  void setLinkCut(raft::NodeId peer, bool cut);
  /// Writes out now what send() and sendToClient() queued since the last
  /// call, instead of when the event loop next polls the sockets: a leader's
  /// append leaves before its own disk write, and no write waits for a round
  /// of the loop. Whatever the socket does not take now still leaves later.
  void flushWrites();
  bool isLinkCut(raft::NodeId peer) const { return m_cutLinks.count(peer) != 0; }

  bool isConnected(raft::NodeId peer) const;
  std::vector<raft::NodeId> connectedPeers() const;
  /// Connections closed because of bad input or a rejected handshake.
  std::uint64_t rejectedConnections() const { return m_rejected; }
  QString errorString() const { return m_error; }
  /// The port actually listened on (useful when the configured port is 0).
  quint16 listenPort() const;

 signals:
  void peerConnected(quint64 peer);
  void peerDisconnected(quint64 peer);
  /// A server connected to us from an address we did not know for it.
  void peerAddressLearned(quint64 peer, const QString& address);

 private:
  struct Connection;

  void acceptPending();
  void openOutgoing(raft::NodeId peer);
  void scheduleReconnect(raft::NodeId peer);
  void onReadyRead(Connection* connection);
  void onDisconnected(Connection* connection);
  bool handleFrame(Connection* connection, wire::Frame& frame);
  bool handleHandshake(Connection* connection, const wire::Handshake& handshake);
  void deliver(Connection* connection, wire::RaftMessage&& wireMessage);
  void writeFrame(Connection* connection, const wire::Frame& frame);
  /// Queues `size` bytes on the connection's socket for flushWrites().
  void queueWrite(Connection* connection, const char* data, qint64 size);
  void reject(Connection* connection, wire::ErrorCode code, const std::string& text);
  void closeConnection(Connection* connection);
  void forgetClient(Connection* connection);
  bool handleClientFrame(Connection* connection, wire::Frame& frame);

  ServerConfig m_config;
  Endpoint m_own;
  QTcpServer* m_server = nullptr;
  protocol::FrameEncoder m_encoder;
  std::string m_sendBuffer;
  MessageHandler m_handler;
  std::map<raft::NodeId, QString> m_peers;
  /// One outgoing connection per peer (may be connecting or waiting).
  std::map<raft::NodeId, Connection*> m_outgoing;
  std::map<raft::NodeId, int> m_backoffMs;
  /// Accepted connections.
  std::map<Connection*, std::shared_ptr<Connection>> m_connections;
  /// Accepted client connections by connection id.
  std::map<quint64, Connection*> m_clients;
  std::set<raft::NodeId> m_cutLinks;
  /// Sockets written to since the last flushWrites().
  std::vector<QPointer<QTcpSocket>> m_unflushed;
  quint64 m_nextClientId = 1;
  ClientFrameHandler m_clientFrames;
  ClientClosedHandler m_clientClosed;
  std::uint64_t m_rejected = 0;
  std::uint64_t m_nextRequestId = 1;
  bool m_stopped = false;
  QString m_error;
};

}  // namespace copycat::server
