#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <QString>
#include <QStringList>

#include "bench/copycat_bench/options.h"

namespace copycat::client {
class Client;
class ClientThread;
}  // namespace copycat::client

namespace copycat::bench {

/// What a benchmark needs to know about one server.
struct NodeState {
  bool leader = false;
  std::uint64_t term = 0;
  std::uint64_t commit = 0;
  std::uint64_t applied = 0;
  std::uint64_t lastIndex = 0;
  std::uint64_t snapshotIndex = 0;
};

/// The servers' storage counters, summed (Server::storageCounters()).
struct StorageTotals {
  std::uint64_t syncs = 0;    // fdatasync of files + fsync of directories
  std::uint64_t batches = 0;  // persist() calls (Ready batches)
  std::uint64_t entries = 0;  // log entries appended
};

struct ClusterConfig {
  int nodes = 3;
  bool disk = true;
  QString root;  // the run's data directory; each server gets a subdirectory
  std::uint64_t snapshotEntries = 10000;
  QString copycatd;  // processes launcher
};

/// A cluster of example-map servers on free 127.0.0.1 ports, in this process
/// or as copycatd children. Every method is called from the main thread and
/// throws std::runtime_error when the cluster cannot do what was asked. The
/// destructor stops every server and kills every child.
class Cluster {
 public:
  static std::unique_ptr<Cluster> create(Launcher launcher, ClusterConfig config);
  virtual ~Cluster() = default;

  /// Starts and bootstraps `config.nodes` servers; returns once a leader is known.
  virtual void start() = 0;
  QStringList addresses() const { return m_addresses; }
  /// Addresses of the servers that were not killed.
  QStringList liveAddresses() const;
  int size() const { return static_cast<int>(m_addresses.size()); }
  bool alive(int node) const { return m_alive.at(static_cast<std::size_t>(node)); }
  QString directory(int node) const;

  /// One server's state; nothing when it is stopped or does not answer.
  virtual std::optional<NodeState> state(int node) = 0;
  /// The index of the leader of the highest term, waiting up to `timeout`; -1: none.
  int leader(std::chrono::milliseconds timeout);
  /// Stops `node` hard: SIGKILL (processes) or Server::shutdown() (in-process).
  virtual void kill(int node) = 0;
  /// Stops `node` gracefully (SIGTERM, or shutdown()).
  virtual void stop(int node) = 0;
  /// Starts a stopped node again from its directory.
  virtual void restart(int node) = 0;
  /// Starts a new server with an empty directory that joins the cluster
  /// (returns at once; watch state()). Returns its index.
  virtual int addJoiningNode() = 0;
  /// How a kill is done, for the report.
  virtual QString killDescription() const = 0;

  /// CPU seconds used by the servers so far (in-process: the whole process,
  /// clients included).
  virtual double serverCpuSeconds() = 0;
  /// The live servers' storage counters, summed; nothing when not counted
  /// (memory storage, or servers in other processes).
  virtual std::optional<StorageTotals> storageTotals() const = 0;

 protected:
  explicit Cluster(ClusterConfig config) : m_config(std::move(config)) {}
  /// Appends a node on a fresh free port; returns its index.
  int addAddress();
  void waitForLeader();
  /// Why the cluster may be failing (processes that exited...), for errors.
  virtual QString diagnose() const { return {}; }

  ClusterConfig m_config;
  QStringList m_addresses;
  std::vector<bool> m_alive;
};

/// A Client for the benchmark's operations (the kv types registered).
std::unique_ptr<client::Client> makeClient(
    const QStringList& members, const QString& name,
    std::chrono::milliseconds timeout = std::chrono::seconds(10),
    std::shared_ptr<client::ClientThread> thread = nullptr);

}  // namespace copycat::bench
