#pragma once

#include <memory>
#include <vector>

#include <QHostAddress>
#include <QRandomGenerator>
#include <QTcpServer>

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

}  // namespace copycat::testing
