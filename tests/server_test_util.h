#pragma once

#include <memory>
#include <vector>

#include <QHostAddress>
#include <QTcpSocket>

#include "engine/protocol/framing.h"
#include "engine/server/server_config.h"

namespace copycat::testing {

/// Free loopback ports (engine/server/server_config.h).
using copycat::server::freeLoopbackPorts;

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
