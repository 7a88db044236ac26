#include "engine/server/server_config.h"

#include <memory>

#include <QRandomGenerator>
#include <QTcpServer>

namespace copycat::server {

std::optional<Endpoint> parseEndpoint(const QString& address) {
  const qsizetype colon = address.lastIndexOf(QLatin1Char(':'));
  if (colon <= 0 || colon == address.size() - 1) return std::nullopt;
  QString hostText = address.left(colon);
  if (hostText.startsWith(QLatin1Char('[')) && hostText.endsWith(QLatin1Char(']'))) {
    hostText = hostText.mid(1, hostText.size() - 2);
  }
  bool ok = false;
  const uint port = address.mid(colon + 1).toUInt(&ok);
  if (!ok || port == 0 || port > 65535) return std::nullopt;
  Endpoint endpoint;
  if (hostText == QLatin1String("localhost")) {
    endpoint.host = QHostAddress(QHostAddress::LocalHost);
  } else if (!endpoint.host.setAddress(hostText)) {
    return std::nullopt;
  }
  endpoint.port = static_cast<quint16>(port);
  return endpoint;
}

std::vector<quint16> freeLoopbackPorts(int count) {
  std::vector<std::unique_ptr<QTcpServer>> holders;
  std::vector<quint16> ports;
  for (int attempt = 0; attempt < 2000 && static_cast<int>(ports.size()) < count; ++attempt) {
    const auto port = static_cast<quint16>(20000 + QRandomGenerator::global()->bounded(12000));
    auto server = std::make_unique<QTcpServer>();
    if (!server->listen(QHostAddress::LocalHost, port)) continue;
    ports.push_back(port);
    holders.push_back(std::move(server));
  }
  if (static_cast<int>(ports.size()) < count) return {};
  return ports;
}

raft::NodeId nodeIdOf(const QString& address) {
  // FNV-1a over the address text: every member derives the same id.
  std::uint64_t hash = 14695981039346656037ull;
  for (const char byte : address.trimmed().toLower().toUtf8()) {
    hash ^= static_cast<unsigned char>(byte);
    hash *= 1099511628211ull;
  }
  // 53 bits: an id is then exact as a JSON number (status output, tools).
  hash &= (std::uint64_t{1} << 53) - 1;
  return hash == raft::kNoNode ? 1 : hash;
}

}  // namespace copycat::server
