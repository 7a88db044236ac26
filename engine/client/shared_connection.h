#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <QString>

#include "engine/protocol/framing.h"

class QTcpSocket;

namespace copycat::client {

/// A connection from one client thread to one server, shared by every client
/// on that thread that talks to that server with the same cluster id. Their
/// requests go out in one stream (each with a request id unique on the
/// connection), each reply goes back to the client that sent the request, and
/// each session event to every client (which keeps its own session's). Many
/// sessions thus cost the server one socket, and a burst of replies costs it
/// one write instead of one per session.
///
/// Lifetime: the clients own it (shared_ptr); the thread's pool only finds
/// it. It closes when the server closes it, on a protocol error (every user
/// is told), or when its last user releases it. Lives on, and is used only
/// on, the thread that acquired it.
class SharedConnection : public std::enable_shared_from_this<SharedConnection> {
 public:
  enum class State : std::uint8_t { Connecting, AwaitReply, Open, Closed };
  using ReplyHandler = std::function<void(const wire::Frame* reply, const QString& error)>;
  using Waiter = std::function<void(SharedConnection* opened, const QString& error)>;

  /// A client using the connection.
  class User {
   public:
    /// The handshake succeeded.
    virtual void connectionOpened(SharedConnection& connection) = 0;
    /// The connection closed; the user's pending replies and waiters fail
    /// with `error` right after this call.
    virtual void connectionClosed(SharedConnection& connection, const QString& error) = 0;
    /// A session event arrived (for any session on this connection).
    virtual void sessionEvent(const wire::SessionEvent& event) = 0;

   protected:
    ~User() = default;
  };

  /// What identifies and opens a connection.
  struct Settings {
    QString address;        // "host:port"
    std::string clusterId;  // sent in the handshake; part of the identity
    QString name;           // sent in the handshake (the first user's)
    std::chrono::milliseconds handshakeTimeout{5000};
  };

  /// This thread's open or opening connection to `settings.address` for
  /// `settings.clusterId`, or a new one; `user` becomes one of its users.
  static std::shared_ptr<SharedConnection> acquire(const Settings& settings, User* user);

  ~SharedConnection();
  SharedConnection(const SharedConnection&) = delete;
  SharedConnection& operator=(const SharedConnection&) = delete;

  /// Unique among all connections of the process.
  std::uint64_t id() const { return m_id; }
  const QString& address() const { return m_settings.address; }
  State state() const { return m_state; }
  bool isOpen() const { return m_state == State::Open; }
  /// The server's node id and advertised address, once open.
  std::uint64_t serverNodeId() const { return m_serverNodeId; }
  const QString& serverAddress() const { return m_serverAddress; }

  /// Sends a request of `user` (setting its request id); `handler` gets the
  /// reply, or nullptr and the error when the connection closes first.
  /// Returns false, sending nothing, when the frame is too large to send.
  bool send(User* user, wire::Frame& frame, ReplyHandler&& handler);
  /// Calls `waiter` once the connection opened (or failed); at once when
  /// it is open already.
  void whenOpen(User* user, Waiter waiter);
  /// `user` stops using the connection: its pending replies and waiters fail
  /// with `error` now. The last user's release closes the connection.
  void release(User* user, const QString& error);

 private:
  struct PendingReply {
    User* user = nullptr;
    ReplyHandler handler;
  };
  struct PendingWaiter {
    User* user = nullptr;
    Waiter waiter;
  };

  SharedConnection(Settings settings, std::uint64_t id);
  void start();
  void onConnected();
  void onReadyRead();
  void handleFrame(wire::Frame& frame);
  void protocolError(wire::ErrorCode code, const std::string& what);
  /// Closes for every user (they are told, then their replies fail).
  void close(const QString& error);
  void forgetInPool();

  Settings m_settings;
  std::uint64_t m_id = 0;
  QTcpSocket* m_socket = nullptr;
  protocol::FrameEncoder m_encoder;
  protocol::FrameDecoder m_decoder;
  State m_state = State::Connecting;
  bool m_starting = false;  // inside start()'s connectToHost()
  std::uint64_t m_nextRequestId = 1;
  std::vector<User*> m_users;
  std::map<std::uint64_t, PendingReply> m_replies;
  std::vector<PendingWaiter> m_waiters;
  std::uint64_t m_serverNodeId = 0;
  QString m_serverAddress;
};

}  // namespace copycat::client
