#pragma once

#include <memory>
#include <vector>

#include <QHostAddress>
#include <QRandomGenerator>
#include <QTcpServer>
#include <QTcpSocket>

#include "engine/protocol/framing.h"

namespace copycat::testing {

/// Loopback ports that were free a moment ago: all are held open at once,
/// then released. They come from below Linux's ephemeral range
/// (32768-60999), so the servers' own outgoing sockets (bound to port 0)
/// never take them. Empty when `count` free ports could not be found.
inline std::vector<quint16> freePorts(int count) {
  std::vector<std::unique_ptr<QTcpServer>> holders;
  std::vector<quint16> ports;
  for (int attempt = 0; attempt < 1000 && static_cast<int>(ports.size()) < count; ++attempt) {
    const auto port = static_cast<quint16>(20000 + QRandomGenerator::global()->bounded(12000));
    auto server = std::make_unique<QTcpServer>();
    if (!server->listen(QHostAddress::LocalHost, port)) continue;
    ports.push_back(port);
    holders.push_back(std::move(server));
  }
  if (static_cast<int>(ports.size()) < count) return {};
  return ports;
}

/// A raw TCP connection to a server, recording every byte it receives.
class RawConnection {
 public:
  explicit RawConnection(quint16 port) {
    QObject::connect(&m_socket, &QTcpSocket::readyRead,
                     [this] { m_received += m_socket.readAll(); });
    m_socket.connectToHost(QHostAddress::LocalHost, port);
  }
  QTcpSocket& socket() { return m_socket; }
  bool connected() const { return m_socket.state() == QAbstractSocket::ConnectedState; }
  bool closed() const { return m_socket.state() == QAbstractSocket::UnconnectedState; }
  void send(const QByteArray& bytes) { m_socket.write(bytes); }
  void send(const copycat::wire::Frame& frame) {
    const std::string bytes = copycat::protocol::FrameEncoder().encode(frame);
    m_socket.write(bytes.data(), static_cast<qint64>(bytes.size()));
  }
  std::vector<copycat::wire::Frame> frames() const {
    copycat::protocol::FrameDecoder decoder;
    decoder.feed(m_received.constData(), static_cast<std::size_t>(m_received.size()));
    std::vector<copycat::wire::Frame> frames;
    while (std::optional<copycat::wire::Frame> frame = decoder.next())
      frames.push_back(std::move(*frame));
    return frames;
  }

 private:
  QTcpSocket m_socket;
  QByteArray m_received;
};

bool hasErrorFrame(const std::vector<copycat::wire::Frame>& frames, copycat::wire::ErrorCode code) {
  for (const copycat::wire::Frame& frame : frames) {
    if (frame.body_case() == copycat::wire::Frame::kError && frame.error().code() == code)
      return true;
  }
  return false;
}

}  // namespace copycat::testing
