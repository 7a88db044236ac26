#include "bench/copycat_bench/cluster.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <map>
#include <stdexcept>
#include <thread>

#include <QDir>
#include <QFile>
#include <QHostAddress>
#include <QProcess>

#include "bench/copycat_bench/stats.h"
#include "engine/client/client.h"
#include "engine/kv/map_state_machine.h"
#include "engine/server/server.h"
#include "engine/storage/disk_storage.h"

namespace copycat::bench {

namespace {

using namespace std::chrono_literals;
using server::Server;

/// Servers in this process (each runs on its own threads).
class InProcessCluster : public Cluster {
 public:
  explicit InProcessCluster(ClusterConfig config) : Cluster(std::move(config)) {}
  ~InProcessCluster() override {
    for (auto& server : m_servers) {
      if (server) server->shutdown().waitForFinished();
    }
  }

  void start() override {
    for (int i = 0; i < m_config.nodes; ++i) addAddress();
    for (int i = 0; i < m_config.nodes; ++i) m_servers.push_back(build(i));
    for (auto& server : m_servers) server->bootstrap(m_addresses).waitForFinished();
    waitForLeader();
  }

  std::optional<NodeState> state(int node) override {
    Server* server = m_servers.at(static_cast<std::size_t>(node)).get();
    if (!server || !server->isRunning()) return std::nullopt;
    const raft::Status status = server->status();
    NodeState s;
    s.leader = status.role == raft::Role::Leader;
    s.term = status.term;
    s.commit = status.commit;
    s.applied = server->appliedIndex();
    s.lastIndex = status.lastIndex;
    s.snapshotIndex = status.snapshotIndex;
    return s;
  }

  void kill(int node) override { stop(node); }
  void stop(int node) override {
    auto& server = m_servers.at(static_cast<std::size_t>(node));
    if (server) {
      server->shutdown().waitForFinished();
      server.reset();
    }
    m_alive[static_cast<std::size_t>(node)] = false;
  }
  void restart(int node) override {
    auto& server = m_servers.at(static_cast<std::size_t>(node));
    server = build(node);
    server->start().waitForFinished();
    m_alive[static_cast<std::size_t>(node)] = true;
  }
  int addJoiningNode() override {
    const int node = addAddress();
    m_servers.push_back(build(node));
    QStringList others = m_addresses;
    others.removeAt(node);
    // Finished when promoted; progress is watched through state().
    m_joins.push_back(m_servers.back()->join(others));
    return node;
  }
  QString killDescription() const override {
    return QStringLiteral(
        "Server::shutdown() of the in-process leader (not a SIGKILL: use --launcher processes)");
  }
  double serverCpuSeconds() override { return selfCpuSeconds(); }
  std::optional<StorageTotals> storageTotals() const override {
    if (!m_config.disk) return std::nullopt;
    StorageTotals totals;
    for (const auto& server : m_servers) {
      if (!server) continue;
      const storage::StorageCounters counters = server->storageCounters();
      totals.syncs += counters.syncs;
      totals.batches += counters.batches;
      totals.entries += counters.entries;
    }
    return totals;
  }

 private:
  std::unique_ptr<Server> build(int node) {
    return Server::builder(m_addresses.at(node))
        .withStateMachine([] { return std::make_unique<kv::MapStateMachine>(); })
        .withRegistration(kv::registerKvOperations)
        .withStorage(m_config.disk ? storage::StorageLevel::Disk : storage::StorageLevel::Memory,
                     directory(node), 32u << 20, m_config.snapshotEntries)
        .withName(QStringLiteral("n%1").arg(node + 1))
        .build();
  }

  std::vector<std::unique_ptr<Server>> m_servers;
  std::vector<QFuture<void>> m_joins;
};

/// copycatd children, killed with SIGKILL; they also die with this process
/// (PR_SET_PDEATHSIG).
class ProcessCluster : public Cluster {
 public:
  explicit ProcessCluster(ClusterConfig config) : Cluster(std::move(config)) {}
  ~ProcessCluster() override {
    m_admin.reset();
    for (auto& process : m_processes) {
      if (process && process->state() != QProcess::NotRunning) {
        process->terminate();
        if (!process->waitForFinished(5000)) {
          process->kill();
          process->waitForFinished(2000);
        }
      }
    }
  }

  void start() override {
    for (int i = 0; i < m_config.nodes; ++i) addAddress();
    m_admin = makeClient(m_addresses, QStringLiteral("bench-admin"), 1s);
    for (int i = 0; i < m_config.nodes; ++i) {
      m_processes.push_back(nullptr);
      launch(i, {QStringLiteral("--bootstrap"), m_addresses.join(QLatin1Char(','))});
    }
    waitForLeader();
  }

  std::optional<NodeState> state(int node) override {
    if (!alive(node)) return std::nullopt;
    auto reply = m_admin->status(m_addresses.at(node)).result();
    if (!reply || !reply->error.isEmpty()) return std::nullopt;
    NodeState s;
    s.leader = reply->role == QLatin1String("leader");
    s.term = reply->term;
    s.commit = reply->commit;
    s.applied = reply->applied;
    s.lastIndex = reply->lastIndex;
    s.snapshotIndex = reply->snapshotIndex;
    return s;
  }

  void kill(int node) override {
    QProcess* process = m_processes.at(static_cast<std::size_t>(node)).get();
    accountDead(node);
    ::kill(static_cast<pid_t>(process->processId()), SIGKILL);
    process->waitForFinished(5000);
    m_alive[static_cast<std::size_t>(node)] = false;
  }
  void stop(int node) override {
    QProcess* process = m_processes.at(static_cast<std::size_t>(node)).get();
    accountDead(node);
    process->terminate();
    if (!process->waitForFinished(20000)) {
      process->kill();
      process->waitForFinished(2000);
    }
    m_alive[static_cast<std::size_t>(node)] = false;
  }
  void restart(int node) override { launch(node, {}); }
  int addJoiningNode() override {
    const int node = addAddress();
    m_processes.push_back(nullptr);
    QStringList others = m_addresses;
    others.removeAt(node);
    launch(node, {QStringLiteral("--join"), others.join(QLatin1Char(','))});
    m_admin = makeClient(m_addresses, QStringLiteral("bench-admin"), 1s);
    return node;
  }
  QString killDescription() const override {
    return QStringLiteral("SIGKILL of the leader's copycatd process");
  }
  double serverCpuSeconds() override {
    double total = m_deadCpu;
    for (std::size_t i = 0; i < m_processes.size(); ++i) {
      if (!m_alive[i] || !m_processes[i]) continue;
      const double cpu = processCpuSeconds(static_cast<pid_t>(m_processes[i]->processId()));
      if (cpu >= 0) {
        m_lastCpu[i] = cpu;
        total += cpu;
      }
    }
    return total;
  }
  /// The storage counters of every live server's status reply; none when
  /// one does not answer.
  std::optional<StorageTotals> storageTotals() const override {
    if (!m_config.disk || !m_admin) return std::nullopt;
    StorageTotals totals;
    for (int node = 0; node < static_cast<int>(m_addresses.size()); ++node) {
      if (!alive(node)) continue;
      auto reply = m_admin->status(m_addresses.at(node)).result();
      if (!reply || !reply->error.isEmpty()) return std::nullopt;
      totals.syncs += reply->storageSyncs;
      totals.batches += reply->storageBatches;
      totals.entries += reply->storageEntries;
    }
    return totals;
  }

  QString diagnose() const override {
    QString text;
    for (std::size_t i = 0; i < m_processes.size(); ++i) {
      const QProcess* process = m_processes[i].get();
      if (!process || process->state() != QProcess::NotRunning) continue;
      QFile log(QDir(m_config.root).filePath(QStringLiteral("n%1.log").arg(i + 1)));
      QString tail;
      if (log.open(QIODevice::ReadOnly)) {
        const QStringList lines =
            QString::fromUtf8(log.readAll()).trimmed().split(QLatin1Char('\n'));
        tail = lines.mid(std::max<qsizetype>(0, lines.size() - 3)).join(QStringLiteral(" | "));
      }
      text += QStringLiteral("; copycatd n%1 exited with %2: %3")
                  .arg(i + 1)
                  .arg(process->exitCode())
                  .arg(tail);
    }
    return text;
  }

 private:
  void accountDead(int node) {
    serverCpuSeconds();
    m_deadCpu += m_lastCpu[static_cast<std::size_t>(node)];
    m_lastCpu[static_cast<std::size_t>(node)] = 0;
  }

  void launch(int node, const QStringList& extra) {
    auto process = std::make_unique<QProcess>();
    process->setProgram(m_config.copycatd);
    QStringList arguments = {
        QStringLiteral("--address"),
        m_addresses.at(node),
        QStringLiteral("--data"),
        directory(node),
        QStringLiteral("--storage"),
        m_config.disk ? QStringLiteral("disk") : QStringLiteral("memory"),
        QStringLiteral("--snapshot-entries"),
        QString::number(m_config.snapshotEntries == 0 ? std::uint64_t{2000000000}
                                                      // copycatd's int maximum
                                                      : m_config.snapshotEntries)};
    process->setArguments(arguments + extra);
    const QString log = QDir(m_config.root).filePath(QStringLiteral("n%1.log").arg(node + 1));
    process->setStandardOutputFile(log, QIODevice::Append);
    process->setStandardErrorFile(log, QIODevice::Append);
    process->setChildProcessModifier([] { ::prctl(PR_SET_PDEATHSIG, SIGKILL); });
    process->start();
    if (!process->waitForStarted(10000)) {
      throw std::runtime_error("cannot start " + m_config.copycatd.toStdString() + ": " +
                               process->errorString().toStdString());
    }
    m_processes[static_cast<std::size_t>(node)] = std::move(process);
    if (m_lastCpu.size() < m_processes.size()) m_lastCpu.resize(m_processes.size(), 0);
    m_alive[static_cast<std::size_t>(node)] = true;
  }

  std::vector<std::unique_ptr<QProcess>> m_processes;
  std::vector<double> m_lastCpu;
  double m_deadCpu = 0;
  std::unique_ptr<client::Client> m_admin;
};

}  // namespace

std::unique_ptr<Cluster> Cluster::create(Launcher launcher, ClusterConfig config) {
  if (launcher == Launcher::Processes) return std::make_unique<ProcessCluster>(std::move(config));
  return std::make_unique<InProcessCluster>(std::move(config));
}

QStringList Cluster::liveAddresses() const {
  QStringList live;
  for (int i = 0; i < size(); ++i) {
    if (alive(i)) live << m_addresses.at(i);
  }
  return live;
}

QString Cluster::directory(int node) const {
  return QDir(m_config.root).filePath(QStringLiteral("n%1").arg(node + 1));
}

int Cluster::leader(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    int best = -1;
    std::uint64_t bestTerm = 0;
    for (int i = 0; i < size(); ++i) {
      const std::optional<NodeState> s = state(i);
      if (s && s->leader && s->term >= bestTerm) {
        best = i;
        bestTerm = s->term;
      }
    }
    if (best >= 0) return best;
    std::this_thread::sleep_for(20ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return -1;
}

int Cluster::addAddress() {
  const std::vector<quint16> ports = server::freeLoopbackPorts(1);
  if (ports.empty()) throw std::runtime_error("no free loopback port");
  // Avoid a port already handed to another node of this run.
  QString address = QStringLiteral("127.0.0.1:%1").arg(ports.front());
  while (m_addresses.contains(address)) {
    address = QStringLiteral("127.0.0.1:%1").arg(server::freeLoopbackPorts(1).at(0));
  }
  m_addresses << address;
  m_alive.push_back(true);
  return size() - 1;
}

void Cluster::waitForLeader() {
  if (leader(30s) < 0)
    throw std::runtime_error("no leader was elected within 30 s" + diagnose().toStdString());
}

std::unique_ptr<client::Client> makeClient(const QStringList& members, const QString& name,
                                           std::chrono::milliseconds timeout,
                                           std::shared_ptr<client::ClientThread> thread) {
  return client::Client::builder(members)
      .withRegistration(kv::registerKvOperations)
      .withTimeout(timeout)
      .withName(name)
      .withEventThread(std::move(thread))
      .build();
}

}  // namespace copycat::bench
