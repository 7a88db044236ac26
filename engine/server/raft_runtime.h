#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <QException>
#include <QFuture>
#include <QMutex>
#include <QObject>
#include <QPromise>
#include <QString>

#include "engine/raft/node.h"
#include "engine/server/server_config.h"
#include "engine/storage/disk_storage.h"

class QThreadPool;
class QTimer;

namespace copycat::wire {
class Frame;
}

namespace copycat::server {

class PeerTransport;
class RaftRuntime;
class SerialWorker;

/// The error a server future fails with: the server is not running, the
/// node is not the leader (see `leader`), or a request made no sense.
class ServerError : public QException {
 public:
  explicit ServerError(QString message, raft::NodeId leader = raft::kNoNode)
      : m_message(std::move(message)), m_text(m_message.toStdString()), m_leader(leader) {}
  void raise() const override { throw *this; }
  ServerError* clone() const override { return new ServerError(*this); }
  const char* what() const noexcept override { return m_text.c_str(); }
  const QString& message() const { return m_message; }
  /// The leader this server knows of when it refused a proposal (0: none).
  raft::NodeId leader() const { return m_leader; }

 private:
  QString m_message;
  std::string m_text;
  raft::NodeId m_leader;
};

/// What a runtime hands to the layer above, on the runtime's thread, in log
/// order. The state machine executor of the Server API plugs in here.
struct RuntimeCallbacks {
  /// Every committed entry (Normal, Noop and ConfigChange) in log order, once
  /// it is durable, a batch at a time (given away: moved out of the batch).
  std::function<void(std::vector<raft::Entry>&& entries)> apply;
  /// A linearizable read released by the core.
  std::function<void(const raft::ReadState&)> read;
  /// A snapshot replaced the state machine's state up to meta.index; `data`
  /// is its content (shared with storage, not copied). Called when one
  /// received from the leader is installed, and once at start() when the
  /// storage holds a snapshot to restart from (before any entry above it is
  /// applied).
  std::function<void(const raft::SnapshotMeta& meta, storage::SharedBytes data)> installSnapshot;
  /// The role or the known leader changed (after the batch that changed it
  /// was persisted, before its committed entries are handed to `apply`).
  std::function<void(raft::Role role, raft::Term term, raft::NodeId leader)> roleChanged;
};

/// Called on the runtime's thread when a proposal was appended at the leader,
/// before anything of it can be committed: the index and term of its entry.
using AcceptedCallback = std::function<void(raft::Index index, raft::Term term)>;

/// The layer that serves client connections (ClientService). The runtime
/// creates it on its own thread once it started and calls it only there.
class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  /// A request on client connection `connection` (see PeerTransport).
  virtual void onClientFrame(quint64 connection, wire::Frame& frame) = 0;
  virtual void onClientClosed(quint64 connection) = 0;
  /// The role or the known leader changed (after the batch was persisted).
  virtual void onRoleChanged(raft::Role role, raft::Term term, raft::NodeId leader) = 0;
  /// Every tick of the runtime's timer.
  virtual void onTick() = 0;
};

using ClientHandlerFactory = std::function<std::unique_ptr<ClientHandler>(RaftRuntime& runtime)>;

/// The runtime's published state, written on the runtime's thread after each
/// Ready batch and read from any thread.
struct RuntimeState {
  mutable QMutex mutex;
  raft::Status status;
  bool running = false;
  /// Why the node stopped (storage failure, core failure), or why it did not start.
  QString failure;
  std::vector<raft::NodeId> connectedPeers;
  std::uint64_t rejectedConnections = 0;
  quint16 listenPort = 0;
  std::uint64_t logBytes = 0;
  storage::StorageCounters storage;
  /// Every member address this server knows (itself included).
  std::map<raft::NodeId, QString> addresses;
};

/// Runs one raft::Node on the thread it lives on: a QTimer ticks the core
/// every tickIntervalMs, PeerTransport delivers messages, and once a round of
/// input is stepped (before the thread's event loop waits again) the runtime
/// drains the core's Ready batches: hand the committed entries (durable
/// already) to the apply callback (a follower in batches, see
/// ServerConfig::followerApplyDelayMs) and release reads, persist (PERSIST BEFORE
/// SEND, except a leader's replication the core marks sendBeforePersist; a
/// persist failure stops the node before anything else is sent; a leader's
/// data sync runs on a thread of its own while this thread keeps stepping
/// messages and proposals into the core, which batches them), send the
/// messages, then advance. start() and shutdown() run on the runtime's
/// thread (ServerNode invokes them there); propose() and bootstrap() may be
/// called from any thread and are queued to it.
class RaftRuntime : public QObject {
  Q_OBJECT

 public:
  RaftRuntime(const ServerConfig& config, RuntimeCallbacks callbacks,
              std::shared_ptr<RuntimeState> state, ClientHandlerFactory clientHandler = {});
  ~RaftRuntime() override;

  /// Opens storage, listens, creates the core and starts ticking. A storage
  /// that holds state restarts from it; an empty one waits for bootstrap() or
  /// for a leader that adds this server. Returns false (see
  /// RuntimeState::failure) when the server cannot start.
  bool start();
  /// Stops ticking, closes every connection, closes storage.
  void shutdown();

  /// Appends `data` at the leader. The future gives the log index the entry
  /// was appended at (it commits later, or is lost if leadership changes);
  /// it fails with ServerError when this server is not the leader.
  QFuture<raft::Index> propose(std::string data);
  /// Same; `accepted` runs on the runtime's thread as soon as the entry is
  /// appended, strictly before `apply` can see it (commit tracking).
  QFuture<raft::Index> propose(std::string data, AcceptedCallback accepted);
  /// Asks the leader for a linearizable read index (ReadIndex, or the lease
  /// with `lease`). The future gives the index the state machine must have
  /// applied before serving the read; it fails with ServerError when this
  /// server is not the leader or loses leadership first. Any thread.
  QFuture<raft::Index> readIndex(bool lease = false);
  /// Records a state machine snapshot taken at applied index `index`: the
  /// storage writes it on the I/O pool (prepareSnapshot), then adopts it on
  /// the runtime's thread (keeping snapshotKeepEntries entries) and tells
  /// Node::snapshotTaken. One is written at a time; of those that arrive
  /// meanwhile only the newest is written next. Ignored when the storage
  /// already holds a snapshot at or above `index`. Any thread.
  void storeSnapshot(raft::Index index, std::string data);
  /// Founds a new cluster of `members` (id -> "host:port", this server among
  /// them) on an empty storage. Fails with ServerError otherwise.
  QFuture<void> bootstrap(std::map<raft::NodeId, QString> members);
  /// Adds member addresses learned elsewhere (a join reply). Any thread.
  void learnAddresses(std::map<raft::NodeId, QString> addresses);
  /// Cuts or heals the link to `peer` (see PeerTransport::setLinkCut). Any
  /// thread.
  void setLinkCut(raft::NodeId peer, bool cut);
  /// Asks this node, if it leads, to hand leadership to `target`
  /// (transferLeadershipNow on the runtime's thread). Any thread.
  void transferLeadership(raft::NodeId target);
  /// Hands the committed entries a follower holds (followerApplyDelayMs) to
  /// the state machine now: a read is about to wait for them. Any thread;
  /// costs nothing when none are held.
  void handOutHeldEntriesSoon();

  /// The most committed entries a follower holds back.
  static constexpr std::size_t kHeldEntriesLimit = 256;

  // --- For the client handler: on the runtime's thread only ---------------

  /// Appends `data` at the leader without waiting; `accepted` runs at once
  /// with the entry's index and term. The batch is persisted and sent when
  /// control returns to the event loop, together with every other proposal
  /// made meanwhile (group commit).
  raft::ProposeResult proposeNow(std::string data, const AcceptedCallback& accepted);
  /// A membership change; `address` travels in the entry so that every
  /// member learns where the server listens.
  raft::ProposeResult proposeChangeNow(const raft::ConfigChange& change, const QString& address);
  /// `done` gets the read index, or nothing and why when leadership is lost.
  using ReadCallback = std::function<void(std::optional<raft::Index> index, const QString& error)>;
  raft::ProposeResult readIndexNow(bool lease, ReadCallback done);
  raft::ProposeResult transferLeadershipNow(raft::NodeId target);
  /// handOutHeldEntriesSoon() on the runtime's thread.
  void handOutHeldEntries();
  /// Cheap on the hot path (statusNow() copies the whole status).
  raft::Role roleNow() const;
  raft::NodeId leaderNow() const;
  raft::Status statusNow() const;
  std::uint64_t logBytesNow() const;
  storage::StorageCounters storageCountersNow() const;
  const std::map<raft::NodeId, QString>& addresses() const { return m_addresses; }
  QString addressOf(raft::NodeId id) const;
  bool sendToClient(quint64 connection, const wire::Frame& frame);
  void closeClient(quint64 connection);
  const ServerConfig& config() const { return m_config; }

 private:
  void createNode(const raft::Membership& initial);
  void onTick();
  void onMessage(raft::Message&& message);
  void processReady();
  /// Hands the data sync of `ready` to the sync thread; the runtime goes on
  /// stepping messages and proposals meanwhile and finishes the batch in
  /// onSynced().
  void startSync(raft::Ready ready, std::function<void()> sync);
  void onSynced(const QString& error);
  /// A leader's own sync left for later: `sync` covers every batch written
  /// so far, up to `through`.
  void deferSync(std::function<void()> sync, raft::Index through);
  void postDeferredSync();
  /// Starts `timer` (single-shot, created on first use) to call `due` in
  /// `delayMs`, unless it is already running: the first deferral sets the
  /// deadline.
  void startDeadline(std::unique_ptr<QTimer>& timer, int delayMs, void (RaftRuntime::*due)());
  void onDeferredSynced(raft::Index through, raft::Term term);
  /// Makes every deferred write durable before anything of a batch that is
  /// not the leader's leaves; false when that failed (the server stopped).
  bool syncDeferredNow();
  /// Runs a deferred sync job (on any thread) and records its failure.
  void runDeferredSync(const std::function<void()>& sync);
  /// Stops the server when a deferred sync failed; true then.
  bool stopIfDeferredSyncFailed();
  /// Stops the node: Ready batch `batch` could not be made durable.
  void failPersist(std::uint64_t batch, const QString& error);
  void sendMessages(raft::Ready& ready);
  /// Sends the messages of a batch that may leave now and hands out its
  /// committed entries, in the order that serves latency best.
  void sendAndHandOut(raft::Ready& ready);
  /// Applies the committed entries and releases the reads of a batch.
  void handOut(raft::Ready& ready);
  /// Passes committed entries to the apply callback; a follower holds them
  /// back for up to followerApplyDelayMs (see ServerConfig).
  void applyCommitted(std::vector<raft::Entry>&& committed);
  /// Everything after the write: role callbacks, snapshot install, the
  /// messages still to send, advance.
  void finishReady(raft::Ready& ready, bool durable = true);
  void reportUnreachable();
  void fail(const QString& reason);
  void publish();
  void failReads(const QString& message);
  bool usable() const { return m_node && !m_failed; }
  /// Marks stepped input for beforeWaiting().
  void flushSoon();
  /// Runs when the thread's event loop is about to wait: processes what
  /// was stepped since, then writes out every queued message.
  void beforeWaiting();
  void applyAddressChange(const raft::Entry& entry);
  void setAddresses(std::map<raft::NodeId, QString> addresses);
  void loadAddresses();
  void saveAddresses();
  void startSnapshotWrite();
  void onSnapshotWritten(raft::Index index, std::optional<storage::PreparedSnapshot> prepared,
                         const QString& error);
  static std::string wrapSnapshot(const std::map<raft::NodeId, QString>& addresses,
                                  std::string_view state);
  /// The state machine's part of a stored snapshot (sharing its memory);
  /// adopts the member addresses it carries.
  storage::SharedBytes unwrapSnapshot(const storage::SharedBytes& data);
  /// Hands the latest stored snapshot to the installSnapshot callback.
  void installStoredSnapshot(const raft::SnapshotMeta& meta);

  ServerConfig m_config;
  RuntimeCallbacks m_callbacks;
  std::shared_ptr<RuntimeState> m_state;
  std::unique_ptr<storage::PersistentStorage> m_storage;
  std::unique_ptr<raft::Node> m_node;
  std::unique_ptr<PeerTransport> m_transport;
  std::unique_ptr<QTimer> m_timer;
  std::optional<raft::Role> m_lastRole;
  raft::Term m_lastRoleTerm = 0;
  bool m_failed = false;
  std::uint64_t m_nextReadId = 1;
  std::map<std::uint64_t, ReadCallback> m_reads;
  std::map<raft::NodeId, QString> m_addresses;
  ClientHandlerFactory m_clientHandlerFactory;
  std::unique_ptr<ClientHandler> m_clientHandler;
  bool m_flushQueued = false;
  /// The data syncs of a leader's Ready batches, one at a time.
  std::unique_ptr<SerialWorker> m_syncWorker;
  /// One thread: the writes of local snapshots, one at a time.
  std::unique_ptr<QThreadPool> m_snapshotPool;
  /// One thread: storage work nothing waits for (removing superseded
  /// snapshot files), so that it never delays a sync or this thread.
  std::unique_ptr<QThreadPool> m_cleanupPool;
  /// The batch whose sync is in flight (the core has no other outstanding).
  std::optional<raft::Ready> m_syncing;
  std::function<void()> m_deferredSync;
  // Set from the first deferred write until syncDeferredNow() made it durable.
  bool m_deferredWrites = false;
  raft::Index m_deferredThrough = 0;
  std::unique_ptr<QTimer> m_deferredSyncTimer;
  // A deferred sync that failed on the sync worker (set there, read here
  // after waiting for the worker).
  QMutex m_deferredFailureMutex;
  QString m_deferredFailure;
  std::vector<raft::NodeId> m_unreachable;
  /// Committed entries a follower has not handed to the state machine yet.
  std::vector<raft::Entry> m_heldEntries;
  /// Whether m_heldEntries is not empty, for other threads.
  std::atomic<bool> m_holdingEntries{false};
  std::unique_ptr<QTimer> m_heldEntriesTimer;
  struct PendingSnapshot {
    raft::Index index = 0;
    std::string data;
  };
  /// The newest snapshot handed to storeSnapshot() and not yet written.
  std::optional<PendingSnapshot> m_pendingSnapshot;
  bool m_writingSnapshot = false;
};

}  // namespace copycat::server
