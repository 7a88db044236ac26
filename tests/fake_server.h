#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <QByteArray>
#include <QHostAddress>
#include <QString>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTest>

#include "engine/protocol/framing.h"

namespace copycat::testing {

/// The transport of a scripted fake Copycat server: listens on 127.0.0.1 at a
/// free port, accepts every connection (numbered from 1, kept open or not in
/// connections(), oldest first, and announced to the accept handler) and hands
/// each copycat.proto frame a client sends, in order, to the frame handler;
/// what arrives while a handler is unset goes unannounced. It answers nothing
/// by itself: the owner replies with send(). Runs on the event loop of the
/// thread that created it.
class ScriptedServer {
 public:
  struct Connection {
    int id = 0;
    QTcpSocket* socket = nullptr;
    copycat::protocol::FrameDecoder decoder;
  };
  using FrameHandler = std::function<void(Connection&, const copycat::wire::Frame&)>;
  using AcceptHandler = std::function<void(Connection&)>;

  ScriptedServer() {
    QVERIFY(m_server.listen(QHostAddress::LocalHost, 0));
    QObject::connect(&m_server, &QTcpServer::newConnection, [this] { accept(); });
  }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  void onFrame(FrameHandler handler) { m_onFrame = std::move(handler); }
  void onAccept(AcceptHandler handler) { m_onAccept = std::move(handler); }

  QString address() const { return QStringLiteral("127.0.0.1:%1").arg(m_server.serverPort()); }

  void send(Connection& connection, const copycat::wire::Frame& frame) {
    const std::string bytes = m_encoder.encode(frame);
    connection.socket->write(bytes.data(), static_cast<qint64>(bytes.size()));
    connection.socket->flush();
  }

  const std::vector<std::unique_ptr<Connection>>& connections() const { return m_connections; }

 private:
  void accept() {
    while (m_server.hasPendingConnections()) {
      auto connection = std::make_unique<Connection>();
      connection->id = static_cast<int>(m_connections.size()) + 1;
      connection->socket = m_server.nextPendingConnection();
      Connection* raw = connection.get();
      m_connections.push_back(std::move(connection));
      QObject::connect(raw->socket, &QTcpSocket::readyRead, [this, raw] { read(*raw); });
      if (m_onAccept) m_onAccept(*raw);
    }
  }

  void read(Connection& connection) {
    const QByteArray bytes = connection.socket->readAll();
    connection.decoder.feed(bytes.constData(), static_cast<std::size_t>(bytes.size()));
    copycat::wire::Frame frame;
    while (connection.decoder.next(frame)) {
      if (m_onFrame) m_onFrame(connection, frame);
    }
  }

  FrameHandler m_onFrame;
  AcceptHandler m_onAccept;
  copycat::protocol::FrameEncoder m_encoder;
  std::vector<std::unique_ptr<Connection>> m_connections;
  QTcpServer m_server;
};

}  // namespace copycat::testing
