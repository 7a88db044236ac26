#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <QHostAddress>
#include <QString>

#include "engine/raft/types.h"
#include "engine/storage/disk_storage.h"

namespace copycat::server {

/// A "host:port" address split into its parts.
struct Endpoint {
  QHostAddress host;
  quint16 port = 0;
};

/// Parses "host:port" where host is an IPv4 literal, "[v6]" or "localhost".
/// Returns nothing when the text is not such an address or the port is 0.
std::optional<Endpoint> parseEndpoint(const QString& address);

/// `count` loopback (127.0.0.1) ports that were free a moment ago: all are
/// held open at once, then released, so they are distinct. They come from
/// 20000-31999, below Linux's ephemeral range, so outgoing sockets (bound to
/// port 0) never take them. Empty when that many could not be found. For
/// tests, benchmarks and in-process clusters on one machine.
std::vector<quint16> freeLoopbackPorts(int count);

/// The member id every server derives from its "host:port" address: a
/// 53-bit hash, so that JSON tools read it exactly.
raft::NodeId nodeIdOf(const QString& address);

/// Everything one server needs to run its consensus core. Addresses are
/// "host:port"; the server listens on `address` and makes its outgoing peer
/// connections from that host, so that a firewall rule on an address acts as
/// a partition.
struct ServerConfig {
  raft::NodeId id = raft::kNoNode;
  QString address = QStringLiteral("127.0.0.1:5001");
  /// The other members (id -> address). bootstrap() replaces it.
  std::map<raft::NodeId, QString> peers;
  /// Disk level: the storage directory (created if missing).
  QString dataDirectory;
  storage::StorageLevel storageLevel = storage::StorageLevel::Disk;
  /// Peers of another cluster are refused; a disk directory is stamped with it.
  std::string clusterId;
  int tickIntervalMs = 50;
  int electionTicks = 10;
  int heartbeatTicks = 1;
  /// First delay before reconnecting to a peer; doubles up to the maximum.
  int reconnectMinMs = 50;
  int reconnectMaxMs = 1000;
  /// Disk level: how long a leader may defer the sync of its own log while
  /// its followers alone form a majority that commits the entries (one sync
  /// then covers many batches, and the followers' syncs need not share the
  /// disk with it on a one-machine cluster); 0 syncs every batch at once.
  int ownSyncDelayMs = 2;
  /// How long a follower may hold committed entries before handing them to
  /// its state machine (which answers no client there): one wake-up of the
  /// state machine thread then applies many batches. It holds at most
  /// RaftRuntime::kHeldEntriesLimit entries, and hands everything out at
  /// once when it stops following, installs a snapshot, serves a sequential
  /// read or shuts down; 0 hands every batch out at once.
  int followerApplyDelayMs = 5;
  /// Disk level: a log segment is closed once it would grow past this size.
  std::uint64_t segmentBytes = 32u << 20;
  /// The state machine executor snapshots every this many applied entries
  /// (0: never); the log then keeps `snapshotKeepEntries` entries below the
  /// snapshot so that slightly lagging followers need no InstallSnapshot.
  std::uint64_t snapshotEntries = 10000;
  raft::Index snapshotKeepEntries = 100;
  /// Session timeout the cluster applies when a client asks for none.
  std::uint64_t sessionTimeoutMs = 5000;
  /// Test fault layer: the fraction of OperationReply frames to clients that
  /// the transport silently drops (0 in production).
  double clientReplyDropRate = 0;
  /// Disk level: the file layer (tests inject faults through it); null uses
  /// the real POSIX files. Used only on the server's thread.
  storage::FileSystem* fileSystem = nullptr;
};

}  // namespace copycat::server
