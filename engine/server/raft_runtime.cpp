#include "engine/server/raft_runtime.h"

#include <algorithm>
#include <exception>
#include <iterator>
#include <utility>

#include <QAbstractEventDispatcher>
#include <QDir>
#include <QFile>
#include <QMutexLocker>
#include <QPromise>
#include <QRandomGenerator>
#include <QSaveFile>
#include <QThreadPool>
#include <QTimer>

#include "engine/protocol/bytes_field.h"
#include "engine/protocol/copycat.pb.h"
#include "engine/server/logging.h"
#include "engine/server/peer_transport.h"
#include "engine/server/serial_worker.h"
#include "engine/server/server_log.pb.h"

namespace copycat::server {

namespace {

template <typename T>
void failPromise(QPromise<T>& promise, const QString& message,
                 raft::NodeId leader = raft::kNoNode) {
  promise.setException(ServerError(message, leader));
  promise.finish();
}

bool storageIsEmpty(const storage::PersistentStorage& storage) {
  return storage.lastIndex() == 0 && storage.snapshotMeta().isEmpty() &&
         storage.hardState().isEmpty();
}

}  // namespace

RaftRuntime::RaftRuntime(const ServerConfig& config, RuntimeCallbacks callbacks,
                         std::shared_ptr<RuntimeState> state, ClientHandlerFactory clientHandler)
    : m_config(config),
      m_callbacks(std::move(callbacks)),
      m_state(std::move(state)),
      m_clientHandlerFactory(std::move(clientHandler)) {}

RaftRuntime::~RaftRuntime() {
  if (m_syncWorker) m_syncWorker->waitForIdle();
  if (m_snapshotPool) m_snapshotPool->waitForDone();
  if (m_cleanupPool) m_cleanupPool->waitForDone();
}

bool RaftRuntime::start() {
  storage::StorageOptions options;
  options.level = m_config.storageLevel;
  options.directory = m_config.dataDirectory.toStdString();
  options.clusterId = m_config.clusterId;
  options.fileSystem = m_config.fileSystem;
  options.log.maxSegmentBytes = m_config.segmentBytes;
  options.warn = [id = m_config.id](const std::string& warning) {
    qCWarning(lcServer) << "node" << id << "storage:" << QString::fromStdString(warning);
  };
  m_syncWorker = std::make_unique<SerialWorker>(QStringLiteral("copycat-sync-%1").arg(m_config.id));
  m_snapshotPool = std::make_unique<QThreadPool>();
  m_snapshotPool->setMaxThreadCount(1);
  m_cleanupPool = std::make_unique<QThreadPool>();
  m_cleanupPool->setMaxThreadCount(1);
  options.background = [pool = m_cleanupPool.get()](std::function<void()> job) {
    pool->start(std::move(job));
  };
  try {
    m_storage = storage::openStorage(options);
  } catch (const std::exception& error) {
    fail(QStringLiteral("cannot open storage: %1").arg(QString::fromUtf8(error.what())));
    return false;
  }

  m_addresses = m_config.peers;
  loadAddresses();
  m_addresses[m_config.id] = m_config.address;
  m_config.peers = m_addresses;
  m_transport = std::make_unique<PeerTransport>(m_config);
  m_transport->setMessageHandler(
      [this](raft::Message&& message) { onMessage(std::move(message)); });
  m_transport->setClientHandlers(
      [this](quint64 connection, wire::Frame& frame) {
        if (m_clientHandler && usable()) m_clientHandler->onClientFrame(connection, frame);
      },
      [this](quint64 connection) {
        if (m_clientHandler) m_clientHandler->onClientClosed(connection);
      });
  connect(m_transport.get(), &PeerTransport::peerAddressLearned, this,
          [this](quint64 peer, const QString& address) {
            if (m_addresses.count(peer) || !m_node) return;
            // A member we had no address for, or, while this server is not a
            // member yet (joining), whoever replicates to it. A removed server
            // that still connects is not taken back into the address book.
            const raft::Membership membership = m_node->status().membership;
            if (!membership.contains(peer) && membership.contains(m_config.id)) return;
            std::map<raft::NodeId, QString> next = m_addresses;
            next[peer] = address;
            setAddresses(std::move(next));
          });
  connect(m_transport.get(), &PeerTransport::peerConnected, this, [this](quint64 peer) {
    qCDebug(lcServer) << "node" << m_config.id << "connected to" << peer;
    publish();
  });
  connect(m_transport.get(), &PeerTransport::peerDisconnected, this, [this](quint64 peer) {
    qCDebug(lcServer) << "node" << m_config.id << "lost its connection to" << peer;
    if (usable()) {
      m_node->reportDisconnected(peer);
      processReady();
    }
    publish();
  });
  if (!m_transport->start()) {
    fail(m_transport->errorString());
    return false;
  }

  try {
    createNode({});
  } catch (const std::exception& error) {
    fail(
        QStringLiteral("cannot start the consensus core: %1").arg(QString::fromUtf8(error.what())));
    return false;
  }
  if (!m_storage->snapshotMeta().isEmpty()) installStoredSnapshot(m_storage->snapshotMeta());
  if (m_clientHandlerFactory) m_clientHandler = m_clientHandlerFactory(*this);
  // What this round of the event loop stepped is processed once, before the
  // thread waits again: every message and proposal that arrived together is
  // one batch (one write, one fsync), and no event is posted to get there
  // (on this kind of VM each wake-up costs system calls that are dear).
  QAbstractEventDispatcher* dispatcher = QAbstractEventDispatcher::instance();
  if (!dispatcher) {
    fail(QStringLiteral("the runtime's thread runs no event loop"));
    return false;
  }
  connect(dispatcher, &QAbstractEventDispatcher::aboutToBlock, this, &RaftRuntime::beforeWaiting);
  m_timer = std::make_unique<QTimer>();
  m_timer->setTimerType(Qt::PreciseTimer);
  m_timer->setInterval(m_config.tickIntervalMs);
  connect(m_timer.get(), &QTimer::timeout, this, &RaftRuntime::onTick);
  m_timer->start();
  {
    QMutexLocker lock(&m_state->mutex);
    m_state->running = true;
    m_state->listenPort = m_transport->listenPort();
  }
  processReady();
  publish();
  qCInfo(lcServer) << "node" << m_config.id << "listening on" << m_config.address;
  return true;
}

void RaftRuntime::shutdown() {
  // A sync or a removal in flight uses the storage's files: let it finish
  // first; what a leader wrote and has not synced yet is synced now.
  if (m_syncWorker && m_deferredSync && usable()) syncDeferredNow();
  handOutHeldEntries();
  m_heldEntriesTimer.reset();
  if (m_syncWorker) m_syncWorker->waitForIdle();
  m_deferredSync = {};
  m_deferredSyncTimer.reset();
  if (m_snapshotPool) m_snapshotPool->waitForDone();
  if (m_cleanupPool) m_cleanupPool->waitForDone();
  m_syncing.reset();
  m_pendingSnapshot.reset();
  m_writingSnapshot = false;
  failReads(QStringLiteral("the server shut down"));
  m_clientHandler.reset();
  m_timer.reset();
  if (m_transport) m_transport->stop();
  m_transport.reset();
  m_node.reset();
  m_storage.reset();
  QMutexLocker lock(&m_state->mutex);
  m_state->running = false;
  m_state->connectedPeers.clear();
}

void RaftRuntime::createNode(const raft::Membership& initial) {
  raft::Config config;
  config.id = m_config.id;
  config.electionTicks = m_config.electionTicks;
  config.heartbeatTicks = m_config.heartbeatTicks;
  config.seed = QRandomGenerator::global()->generate64();
  m_node = std::make_unique<raft::Node>(config, *m_storage, initial);
  m_lastRole.reset();
}

QFuture<raft::Index> RaftRuntime::propose(std::string data) { return propose(std::move(data), {}); }

QFuture<raft::Index> RaftRuntime::propose(std::string data, AcceptedCallback accepted) {
  auto promise = std::make_shared<QPromise<raft::Index>>();
  QFuture<raft::Index> future = promise->future();
  promise->start();
  QMetaObject::invokeMethod(
      this,
      [this, promise, data = std::move(data), accepted = std::move(accepted)]() mutable {
        if (!usable()) {
          failPromise(*promise, QStringLiteral("the server is not running"));
          return;
        }
        raft::Index index = 0;
        const raft::ProposeResult result =
            proposeNow(std::move(data), [&](raft::Index appended, raft::Term term) {
              index = appended;
              if (accepted) accepted(appended, term);
            });
        if (result != raft::ProposeResult::Accepted) {
          failPromise(
              *promise,
              QStringLiteral("proposal refused: %1")
                  .arg(QString::fromUtf8(raft::toString(result).data(),
                                         static_cast<qsizetype>(raft::toString(result).size()))),
              m_node->leader());
          return;
        }
        processReady();
        if (m_failed) {
          failPromise(*promise, QStringLiteral("the server stopped"));
          return;
        }
        promise->addResult(index);
        promise->finish();
      },
      Qt::QueuedConnection);
  return future;
}

QFuture<raft::Index> RaftRuntime::readIndex(bool lease) {
  auto promise = std::make_shared<QPromise<raft::Index>>();
  QFuture<raft::Index> future = promise->future();
  promise->start();
  QMetaObject::invokeMethod(
      this,
      [this, promise, lease] {
        if (!usable()) {
          failPromise(*promise, QStringLiteral("the server is not running"));
          return;
        }
        const raft::ProposeResult result = readIndexNow(
            lease, [this, promise](std::optional<raft::Index> index, const QString& error) {
              if (index) {
                promise->addResult(*index);
                promise->finish();
              } else {
                failPromise(*promise, error, m_node ? m_node->leader() : raft::kNoNode);
              }
            });
        if (result != raft::ProposeResult::Accepted) {
          failPromise(
              *promise,
              QStringLiteral("read refused: %1")
                  .arg(QString::fromUtf8(raft::toString(result).data(),
                                         static_cast<qsizetype>(raft::toString(result).size()))),
              m_node->leader());
        }
      },
      Qt::QueuedConnection);
  return future;
}

raft::ProposeResult RaftRuntime::proposeNow(std::string data, const AcceptedCallback& accepted) {
  if (!usable()) return raft::ProposeResult::NotLeader;
  const raft::ProposeResult result = m_node->propose(std::move(data));
  if (result != raft::ProposeResult::Accepted) return result;
  if (accepted) accepted(m_node->lastIndex(), m_node->term());
  flushSoon();
  return result;
}

raft::ProposeResult RaftRuntime::proposeChangeNow(const raft::ConfigChange& change,
                                                  const QString& address) {
  if (!usable()) return raft::ProposeResult::NotLeader;
  const raft::ProposeResult result = m_node->proposeChange(change, address.toStdString());
  if (result == raft::ProposeResult::Accepted) flushSoon();
  return result;
}

raft::ProposeResult RaftRuntime::readIndexNow(bool lease, ReadCallback done) {
  if (!usable()) return raft::ProposeResult::NotLeader;
  const std::uint64_t id = m_nextReadId++;
  const raft::ProposeResult result =
      m_node->readIndex(id, lease ? raft::ReadMode::Lease : raft::ReadMode::ReadIndex);
  if (result != raft::ProposeResult::Accepted) return result;
  m_reads.emplace(id, std::move(done));
  flushSoon();
  return result;
}

raft::ProposeResult RaftRuntime::transferLeadershipNow(raft::NodeId target) {
  if (!usable()) return raft::ProposeResult::NotLeader;
  const raft::ProposeResult result = m_node->transferLeadership(target);
  if (result == raft::ProposeResult::Accepted) flushSoon();
  return result;
}

raft::Role RaftRuntime::roleNow() const { return m_node ? m_node->role() : raft::Role::Follower; }

raft::NodeId RaftRuntime::leaderNow() const { return m_node ? m_node->leader() : raft::kNoNode; }

raft::Status RaftRuntime::statusNow() const { return m_node ? m_node->status() : raft::Status{}; }

std::uint64_t RaftRuntime::logBytesNow() const { return m_storage ? m_storage->logBytes() : 0; }

storage::StorageCounters RaftRuntime::storageCountersNow() const {
  return m_storage ? m_storage->counters() : storage::StorageCounters{};
}

QString RaftRuntime::addressOf(raft::NodeId id) const {
  auto found = m_addresses.find(id);
  return found == m_addresses.end() ? QString() : found->second;
}

bool RaftRuntime::sendToClient(quint64 connection, const wire::Frame& frame) {
  return m_transport && m_transport->sendToClient(connection, frame);
}

void RaftRuntime::closeClient(quint64 connection) {
  if (m_transport) m_transport->closeClient(connection);
}

void RaftRuntime::flushSoon() { m_flushQueued = true; }

void RaftRuntime::beforeWaiting() {
  if (m_flushQueued) {
    m_flushQueued = false;
    processReady();
  }
  if (m_transport) m_transport->flushWrites();
}

void RaftRuntime::learnAddresses(std::map<raft::NodeId, QString> addresses) {
  QMetaObject::invokeMethod(
      this,
      [this, addresses = std::move(addresses)] {
        std::map<raft::NodeId, QString> next = m_addresses;
        for (const auto& [id, address] : addresses) {
          if (id != raft::kNoNode && parseEndpoint(address)) next[id] = address;
        }
        setAddresses(std::move(next));
      },
      Qt::QueuedConnection);
}

void RaftRuntime::setLinkCut(raft::NodeId peer, bool cut) {
  QMetaObject::invokeMethod(
      this,
      [this, peer, cut] {
        if (m_transport) m_transport->setLinkCut(peer, cut);
      },
      Qt::QueuedConnection);
}

void RaftRuntime::transferLeadership(raft::NodeId target) {
  QMetaObject::invokeMethod(
      this, [this, target] { transferLeadershipNow(target); }, Qt::QueuedConnection);
}

void RaftRuntime::setAddresses(std::map<raft::NodeId, QString> addresses) {
  addresses[m_config.id] = m_config.address;
  if (addresses == m_addresses) return;
  m_addresses = std::move(addresses);
  if (m_transport) m_transport->setPeers(m_addresses);
  saveAddresses();
  QMutexLocker lock(&m_state->mutex);
  m_state->addresses = m_addresses;
}

void RaftRuntime::applyAddressChange(const raft::Entry& entry) {
  if (entry.type != raft::EntryType::ConfigChange) return;
  std::map<raft::NodeId, QString> next = m_addresses;
  const raft::NodeId node = entry.change.node;
  if (entry.change.kind == raft::ConfigChange::Kind::Remove) {
    if (node != m_config.id) next.erase(node);
  } else if (!entry.data.empty()) {
    const QString address = QString::fromStdString(entry.data);
    if (parseEndpoint(address) && nodeIdOf(address) == node) next[node] = address;
  }
  setAddresses(std::move(next));
}

/// The members' addresses, kept next to the storage so that a restarted
/// server knows where its peers listen (the log's membership has ids only).
static QString membersFile(const ServerConfig& config) {
  return QDir(config.dataDirectory).filePath(QStringLiteral("members"));
}

void RaftRuntime::loadAddresses() {
  if (m_config.storageLevel != storage::StorageLevel::Disk) return;
  QFile file(membersFile(m_config));
  if (!file.open(QIODevice::ReadOnly)) return;
  for (const QByteArray& line : file.readAll().split('\n')) {
    const QString address = QString::fromUtf8(line).trimmed();
    if (address.isEmpty()) continue;
    if (!parseEndpoint(address)) {
      qCWarning(lcServer) << "node" << m_config.id << "ignores the invalid address" << address
                          << "in" << membersFile(m_config);
      continue;
    }
    m_addresses[nodeIdOf(address)] = address;
  }
}

void RaftRuntime::saveAddresses() {
  if (m_config.storageLevel != storage::StorageLevel::Disk) return;
  QSaveFile file(membersFile(m_config));
  QByteArray text;
  for (const auto& [id, address] : m_addresses) text += address.toUtf8() + '\n';
  if (!file.open(QIODevice::WriteOnly) || file.write(text) != text.size() || !file.commit()) {
    qCWarning(lcServer) << "node" << m_config.id << "cannot save the member addresses in"
                        << membersFile(m_config);
  }
}

std::string RaftRuntime::wrapSnapshot(const std::map<raft::NodeId, QString>& addresses,
                                      std::string_view state) {
  constexpr std::uint32_t kStateField = serverlog::RuntimeSnapshot::kStateFieldNumber;
  serverlog::RuntimeSnapshot snapshot;
  for (const auto& [id, address] : addresses) {
    (*snapshot.mutable_addresses())[id] = address.toStdString();
  }
  // The addresses, then the state as the last field: the bytes
  // SerializeAsString() gives, with a single copy of the state.
  std::string bytes;
  bytes.reserve(snapshot.ByteSizeLong() + protocol::bytesFieldSize(kStateField, state.size()));
  snapshot.AppendToString(&bytes);
  protocol::appendBytesField(bytes, kStateField, state);
  return bytes;
}

storage::SharedBytes RaftRuntime::unwrapSnapshot(const storage::SharedBytes& data) {
  constexpr std::uint32_t kStateField = serverlog::RuntimeSnapshot::kStateFieldNumber;
  serverlog::RuntimeSnapshot snapshot;
  std::string addresses;
  std::string_view state;
  if (!protocol::splitBytesField(data.view(), kStateField, addresses, state) ||
      !snapshot.ParseFromString(addresses)) {
    // The executor rejects what it cannot read and stops loudly.
    return data;
  }
  std::map<raft::NodeId, QString> next = m_addresses;
  for (const auto& [id, address] : snapshot.addresses()) {
    const QString text = QString::fromStdString(address);
    if (parseEndpoint(text) && nodeIdOf(text) == id) next[id] = text;
  }
  setAddresses(std::move(next));
  return data.slice(static_cast<std::size_t>(state.data() - data.view().data()), state.size());
}

void RaftRuntime::installStoredSnapshot(const raft::SnapshotMeta& meta) {
  // The entries held are older than the snapshot: they go first, in order.
  handOutHeldEntries();
  storage::SharedBytes state = unwrapSnapshot(m_storage->snapshotBytes());
  if (m_callbacks.installSnapshot) m_callbacks.installSnapshot(meta, std::move(state));
}

void RaftRuntime::storeSnapshot(raft::Index index, std::string data) {
  QMetaObject::invokeMethod(
      this,
      [this, index, data = std::move(data)]() mutable {
        if (!usable()) return;
        // The newest waits while another is written; an older one waiting
        // is superseded.
        m_pendingSnapshot = PendingSnapshot{index, std::move(data)};
        startSnapshotWrite();
      },
      Qt::QueuedConnection);
}

void RaftRuntime::startSnapshotWrite() {
  if (m_writingSnapshot || !m_pendingSnapshot || !usable()) return;
  PendingSnapshot pending = std::move(*m_pendingSnapshot);
  m_pendingSnapshot.reset();
  if (pending.index <= m_storage->snapshotMeta().index) return;
  const std::optional<raft::Term> term = m_storage->term(pending.index);
  if (!term || pending.index > m_node->status().commit) return;
  raft::SnapshotMeta meta;
  meta.index = pending.index;
  meta.term = *term;
  meta.membership = m_node->membershipAt(pending.index);
  m_writingSnapshot = true;
  // Wrapping copies the state once and writing it syncs a file: both off
  // this thread, which goes on replicating meanwhile.
  m_snapshotPool->start([this, meta, addresses = m_addresses, state = std::move(pending.data)] {
    std::optional<storage::PreparedSnapshot> prepared;
    QString error;
    try {
      prepared = m_storage->prepareSnapshot(meta, wrapSnapshot(addresses, state));
    } catch (const std::exception& failure) {
      error = QString::fromUtf8(failure.what());
    }
    QMetaObject::invokeMethod(
        this,
        [this, index = meta.index, prepared = std::move(prepared), error]() mutable {
          onSnapshotWritten(index, std::move(prepared), error);
        },
        Qt::QueuedConnection);
  });
}

void RaftRuntime::onSnapshotWritten(raft::Index index,
                                    std::optional<storage::PreparedSnapshot> prepared,
                                    const QString& error) {
  m_writingSnapshot = false;
  if (!usable()) return;
  try {
    if (!prepared) throw std::runtime_error(error.toStdString());
    // A follower being sent an older snapshot needs the entries after it
    // next: compaction leaves them, or it would need this snapshot too.
    raft::Index keep = m_config.snapshotKeepEntries;
    for (const raft::PeerProgress& peer : m_node->status().progress) {
      if (peer.state == raft::PeerProgress::State::Snapshot && peer.pendingSnapshot < index) {
        keep = std::max(keep, index - peer.pendingSnapshot);
      }
    }
    if (m_storage->adoptSnapshot(std::move(*prepared), keep)) {
      m_node->snapshotTaken(index);
      qCDebug(lcServer) << "node" << m_config.id << "took a snapshot at" << index;
    }
  } catch (const std::exception& failure) {
    fail(QStringLiteral("cannot store the snapshot at %1: %2")
             .arg(index)
             .arg(QString::fromUtf8(failure.what())));
    return;
  }
  startSnapshotWrite();
  processReady();
}

void RaftRuntime::failReads(const QString& message) {
  auto reads = std::move(m_reads);
  m_reads.clear();
  for (auto& [id, done] : reads) done(std::nullopt, message);
}

QFuture<void> RaftRuntime::bootstrap(std::map<raft::NodeId, QString> members) {
  auto promise = std::make_shared<QPromise<void>>();
  QFuture<void> future = promise->future();
  promise->start();
  QMetaObject::invokeMethod(
      this,
      [this, promise, members = std::move(members)] {
        if (!usable()) {
          failPromise(*promise, QStringLiteral("the server is not running"));
          return;
        }
        if (!members.count(m_config.id)) {
          failPromise(*promise,
                      QStringLiteral("node %1 is not among the members").arg(m_config.id));
          return;
        }
        for (const auto& [id, address] : members) {
          if (id == raft::kNoNode || !parseEndpoint(address)) {
            failPromise(*promise, QStringLiteral("invalid member %1 at '%2'").arg(id).arg(address));
            return;
          }
        }
        if (!storageIsEmpty(*m_storage)) {
          failPromise(*promise, QStringLiteral("node %1 already has state; it restarts from its "
                                               "storage instead of bootstrapping")
                                    .arg(m_config.id));
          return;
        }
        raft::Membership membership;
        for (const auto& [id, address] : members) membership.voters.push_back(id);
        setAddresses(members);
        try {
          createNode(membership);
        } catch (const std::exception& error) {
          fail(QStringLiteral("cannot bootstrap: %1").arg(QString::fromUtf8(error.what())));
        }
        processReady();
        if (m_failed) {
          failPromise(*promise, QStringLiteral("the server stopped"));
          return;
        }
        promise->finish();
      },
      Qt::QueuedConnection);
  return future;
}

void RaftRuntime::onTick() {
  if (!usable()) return;
  try {
    m_node->tick();
  } catch (const std::exception& error) {
    fail(QStringLiteral("consensus core failed: %1").arg(QString::fromUtf8(error.what())));
    return;
  }
  processReady();
  if (m_clientHandler && usable()) m_clientHandler->onTick();
}

void RaftRuntime::onMessage(raft::Message&& message) {
  if (!usable()) return;
  try {
    m_node->step(message);
  } catch (const std::exception& error) {
    fail(QStringLiteral("consensus core failed: %1").arg(QString::fromUtf8(error.what())));
    return;
  }
  // Every message that arrived with this one is stepped first: one write
  // (one fsync) covers them all.
  flushSoon();
}

void RaftRuntime::processReady() {
  if (!usable()) return;
  try {
    if (m_syncing) {
      // While a batch is written, a leader hands out what needs no write.
      while (m_node->hasReadyWhileWriting()) {
        raft::Ready ready = m_node->readyWhileWriting();
        sendAndHandOut(ready);
        m_node->advance(ready);
        reportUnreachable();
      }
      return;
    }
    while (m_node->hasReady()) {
      raft::Ready ready = m_node->ready();
      if (!ready.sendBeforePersist && !syncDeferredNow()) return;
      // A leader's replication leaves before its own write (thesis §10.2.1).
      if (ready.sendBeforePersist) {
        sendAndHandOut(ready);
      } else {
        handOut(ready);
      }
      std::function<void()> sync;
      try {
        sync = m_storage->write(ready);
      } catch (const std::exception& error) {
        // Not durable: nothing more of this batch may leave the node.
        failPersist(ready.number, QString::fromUtf8(error.what()));
        return;
      }
      if (sync && ready.sendBeforePersist && m_config.ownSyncDelayMs > 0 &&
          !m_node->ownSyncNeeded()) {
        deferSync(std::move(sync), ready.entries.back().index);
        finishReady(ready, false);
        continue;
      }
      if (sync && ready.sendBeforePersist) {
        // This sync covers what was deferred, too.
        m_deferredSync = {};
        if (m_deferredSyncTimer) m_deferredSyncTimer->stop();
        startSync(std::move(ready), std::move(sync));
        break;
      }
      if (sync) {
        // Nothing of this batch may leave before it is durable, and a node
        // that is not leading answers nothing meanwhile anyway: it syncs here
        // instead of waking a pool thread and being woken by it (two thread
        // switches and their scheduling delays on every append's round trip;
        // 10% less CPU and 12% more writes/s at 16 and 100 clients). What
        // arrives meanwhile waits in the sockets and forms the next batch.
        try {
          sync();
        } catch (const std::exception& error) {
          failPersist(ready.number, QString::fromUtf8(error.what()));
          return;
        }
      }
      finishReady(ready);
    }
  } catch (const std::exception& error) {
    fail(QStringLiteral("runtime failed: %1").arg(QString::fromUtf8(error.what())));
    return;
  }
  // A follower dropped out meanwhile: the leader's own copy counts now.
  if (m_deferredSync && m_node->ownSyncNeeded()) postDeferredSync();
  publish();
}

void RaftRuntime::deferSync(std::function<void()> sync, raft::Index through) {
  // The newest job syncs every earlier unsynced write as well.
  m_deferredWrites = true;
  m_deferredSync = std::move(sync);
  m_deferredThrough = through;
  startDeadline(m_deferredSyncTimer, m_config.ownSyncDelayMs, &RaftRuntime::postDeferredSync);
}

void RaftRuntime::startDeadline(std::unique_ptr<QTimer>& timer, int delayMs,
                                void (RaftRuntime::*due)()) {
  if (!timer) {
    timer = std::make_unique<QTimer>();
    timer->setSingleShot(true);
    timer->setTimerType(Qt::PreciseTimer);
    connect(timer.get(), &QTimer::timeout, this, due);
  }
  if (!timer->isActive()) timer->start(delayMs);
}

void RaftRuntime::postDeferredSync() {
  if (m_deferredSyncTimer) m_deferredSyncTimer->stop();
  if (!m_deferredSync || !usable()) return;
  const raft::Index through = m_deferredThrough;
  const raft::Term term = m_node->term();
  m_syncWorker->post([this, sync = std::move(m_deferredSync), through, term] {
    runDeferredSync(sync);
    QMetaObject::invokeMethod(
        this, [this, through, term] { onDeferredSynced(through, term); }, Qt::QueuedConnection);
  });
  m_deferredSync = {};
}

void RaftRuntime::onDeferredSynced(raft::Index through, raft::Term term) {
  if (!usable() || stopIfDeferredSyncFailed()) return;
  // In a later term the log may have been cut and rewritten above a point
  // this sync did not cover (a leader never cuts its log in its own term).
  if (m_node->term() != term) return;
  m_node->markDurable(through);
  processReady();
}

bool RaftRuntime::syncDeferredNow() {
  if (!m_deferredWrites) return true;
  if (m_deferredSyncTimer) m_deferredSyncTimer->stop();
  m_syncWorker->waitForIdle();
  if (m_deferredSync) {
    runDeferredSync(m_deferredSync);
    m_deferredSync = {};
  }
  if (stopIfDeferredSyncFailed()) return false;
  m_deferredWrites = false;
  return true;
}

void RaftRuntime::runDeferredSync(const std::function<void()>& sync) {
  try {
    sync();
  } catch (const std::exception& failure) {
    QMutexLocker lock(&m_deferredFailureMutex);
    m_deferredFailure = QString::fromUtf8(failure.what());
  }
}

bool RaftRuntime::stopIfDeferredSyncFailed() {
  QString failure;
  {
    QMutexLocker lock(&m_deferredFailureMutex);
    failure = m_deferredFailure;
  }
  if (failure.isEmpty()) return false;
  fail(QStringLiteral("cannot persist the leader's log: %1").arg(failure));
  return true;
}

void RaftRuntime::startSync(raft::Ready ready, std::function<void()> sync) {
  m_syncing = std::move(ready);
  m_syncWorker->post([this, sync = std::move(sync)] {
    QString error;
    try {
      sync();
    } catch (const std::exception& failure) {
      error = QString::fromUtf8(failure.what());
    }
    QMetaObject::invokeMethod(
        this, [this, error] { onSynced(error); }, Qt::QueuedConnection);
  });
}

void RaftRuntime::onSynced(const QString& error) {
  std::optional<raft::Ready> ready = std::move(m_syncing);
  m_syncing.reset();
  if (!ready || !usable()) return;
  if (!error.isEmpty()) {
    failPersist(ready->number, error);
    return;
  }
  try {
    finishReady(*ready);
  } catch (const std::exception& failure) {
    fail(QStringLiteral("runtime failed: %1").arg(QString::fromUtf8(failure.what())));
    return;
  }
  processReady();
}

void RaftRuntime::failPersist(std::uint64_t batch, const QString& error) {
  fail(QStringLiteral("cannot persist Ready batch %1: %2").arg(batch).arg(error));
}

void RaftRuntime::sendMessages(raft::Ready& ready) {
  for (raft::Message& message : ready.messages) {
    const raft::NodeId to = message.to;
    if (!m_transport->send(std::move(message))) m_unreachable.push_back(to);
  }
  ready.messages.clear();
  m_transport->flushWrites();
}

void RaftRuntime::finishReady(raft::Ready& ready, bool durable) {
  if (ready.role && ready.role != m_lastRole) {
    // A pre-vote round changes no term. A node that keeps failing one (cut
    // off, or removed without having learned it) would log two lines every
    // election timeout: its rounds are logged at debug level.
    const bool preVoteRound =
        *ready.role == raft::Role::PreCandidate ||
        (m_lastRole == raft::Role::PreCandidate && m_lastRoleTerm == m_node->term());
    m_lastRole = ready.role;
    m_lastRoleTerm = m_node->term();
    const std::string_view role = raft::toString(*ready.role);
    const QString line = QStringLiteral("node %1 is %2 in term %3 (leader %4)")
                             .arg(m_config.id)
                             .arg(QLatin1String(role.data(), static_cast<qsizetype>(role.size())))
                             .arg(m_node->term())
                             .arg(ready.leader);
    if (preVoteRound) {
      qCDebug(lcServer).noquote() << line;
    } else {
      qCInfo(lcServer).noquote() << line;
    }
  }
  if (ready.role) {
    if (*ready.role != raft::Role::Follower) handOutHeldEntries();
    if (*ready.role != raft::Role::Leader) {
      failReads(QStringLiteral("leadership lost before the read was confirmed"));
    }
    if (m_callbacks.roleChanged) m_callbacks.roleChanged(*ready.role, m_node->term(), ready.leader);
    if (m_clientHandler) m_clientHandler->onRoleChanged(*ready.role, m_node->term(), ready.leader);
  }
  if (ready.snapshot) installStoredSnapshot(*ready.snapshot);
  sendMessages(ready);
  if (durable) {
    m_node->advance(ready);
  } else {
    m_node->advanceWritten(ready);
  }
  reportUnreachable();
}

void RaftRuntime::sendAndHandOut(raft::Ready& ready) {
  // New entries leave first: the followers' syncs are what a commit waits
  // for. Otherwise the committed entries go first: a reply waits for them,
  // and the state machine thread applies them while this one sends.
  const bool replicating =
      std::any_of(ready.messages.begin(), ready.messages.end(),
                  [](const raft::Message& message) { return !message.entries.empty(); });
  if (replicating) sendMessages(ready);
  handOut(ready);
  sendMessages(ready);
}

void RaftRuntime::handOut(raft::Ready& ready) {
  for (const raft::Entry& entry : ready.committed) applyAddressChange(entry);
  if (!ready.committed.empty()) applyCommitted(std::move(ready.committed));
  ready.committed.clear();
  for (const raft::ReadState& read : ready.reads) {
    if (m_callbacks.read) m_callbacks.read(read);
    const auto it = m_reads.find(read.requestId);
    if (it != m_reads.end()) {
      ReadCallback done = std::move(it->second);
      m_reads.erase(it);
      done(read.index, QString());
    }
  }
}

void RaftRuntime::applyCommitted(std::vector<raft::Entry>&& committed) {
  if (!m_callbacks.apply) return;
  // A follower's state machine answers no client: waking its thread for
  // every batch of a few entries costs more CPU than applying them (at 16
  // clients about 1,300 wake-ups a second on each follower).
  if (m_config.followerApplyDelayMs <= 0 || m_node->role() != raft::Role::Follower) {
    handOutHeldEntries();
    m_callbacks.apply(std::move(committed));
    return;
  }
  if (m_heldEntries.empty()) {
    m_heldEntries = std::move(committed);
    m_holdingEntries = true;
  } else {
    m_heldEntries.insert(m_heldEntries.end(), std::make_move_iterator(committed.begin()),
                         std::make_move_iterator(committed.end()));
  }
  if (m_heldEntries.size() >= kHeldEntriesLimit) {
    handOutHeldEntries();
    return;
  }
  startDeadline(m_heldEntriesTimer, m_config.followerApplyDelayMs,
                &RaftRuntime::handOutHeldEntries);
}

void RaftRuntime::handOutHeldEntries() {
  // The timer runs only while entries are held: a leader's call (every
  // batch, every sequential read) ends here.
  if (m_heldEntries.empty()) return;
  if (m_heldEntriesTimer) m_heldEntriesTimer->stop();
  std::vector<raft::Entry> held = std::move(m_heldEntries);
  m_heldEntries.clear();
  m_holdingEntries = false;
  if (m_callbacks.apply) m_callbacks.apply(std::move(held));
}

void RaftRuntime::handOutHeldEntriesSoon() {
  if (!m_holdingEntries) return;
  QMetaObject::invokeMethod(this, &RaftRuntime::handOutHeldEntries, Qt::QueuedConnection);
}

void RaftRuntime::reportUnreachable() {
  std::vector<raft::NodeId> unreachable = std::move(m_unreachable);
  m_unreachable.clear();
  std::sort(unreachable.begin(), unreachable.end());
  unreachable.erase(std::unique(unreachable.begin(), unreachable.end()), unreachable.end());
  for (raft::NodeId peer : unreachable) m_node->reportUnreachable(peer);
}

void RaftRuntime::fail(const QString& reason) {
  qCCritical(lcServer) << "node" << m_config.id << "stops:" << reason;
  m_failed = true;
  failReads(QStringLiteral("the server stopped: %1").arg(reason));
  if (m_timer) m_timer->stop();
  if (m_transport) m_transport->stop();
  QMutexLocker lock(&m_state->mutex);
  m_state->running = false;
  m_state->failure = reason;
  m_state->connectedPeers.clear();
}

void RaftRuntime::publish() {
  raft::Status status = m_node ? m_node->status() : raft::Status{};
  std::vector<raft::NodeId> peers;
  std::uint64_t rejected = 0;
  if (m_transport) {
    peers = m_transport->connectedPeers();
    rejected = m_transport->rejectedConnections();
  }
  const std::uint64_t logBytes = logBytesNow();
  const storage::StorageCounters counters = storageCountersNow();
  QMutexLocker lock(&m_state->mutex);
  m_state->storage = counters;
  m_state->status = std::move(status);
  if (!m_failed) m_state->connectedPeers = std::move(peers);
  m_state->rejectedConnections = rejected;
  m_state->logBytes = logBytes;
  m_state->addresses = m_addresses;
}

}  // namespace copycat::server
