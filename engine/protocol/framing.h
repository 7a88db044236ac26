#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/protocol/copycat.pb.h"

namespace copycat::protocol {

/// The protocol version of engine/protocol/copycat.proto, sent in
/// Handshake.protocol_version.
inline constexpr std::uint32_t kProtocolVersion = 1;

/// Bytes of the big-endian length prefix in front of every frame.
inline constexpr std::size_t kLengthPrefixBytes = 4;

/// Default bound on the serialized Frame that follows a length prefix.
inline constexpr std::size_t kMaxFrameBytes = 64u * 1024u * 1024u;

/// The largest bound a decoder accepts (protobuf parses at most INT_MAX bytes).
inline constexpr std::size_t kLargestMaxFrameBytes = 0x7fffffffu;

/// Turns Frames into bytes for a TCP stream: a 4-byte big-endian length, then
/// the serialized Frame. Stateless apart from its bound; any thread may use a
/// const encoder.
class FrameEncoder {
 public:
  explicit FrameEncoder(std::size_t maxFrameBytes = kMaxFrameBytes);

  /// The bytes of one frame. Returns an empty string when the frame cannot be
  /// sent: no body set, or serialized size over maxFrameBytes() (a receiver
  /// would reject it). A valid frame is never empty.
  std::string encode(const wire::Frame& frame) const;

  /// Appends the bytes of one frame to `out`. Returns false, leaving `out`
  /// unchanged, in the cases where encode() returns an empty string.
  bool encodeTo(const wire::Frame& frame, std::string& out) const;

  std::size_t maxFrameBytes() const { return m_maxFrameBytes; }

 private:
  std::size_t m_maxFrameBytes;
};

/// Cuts a TCP byte stream into Frames; the one place frame bytes are parsed.
///
/// The caller feeds whatever the socket delivered and then calls next() until
/// it returns nothing. A frame split over several reads is simply waited for.
/// Bad input (a length of zero or over the maximum, bytes that do not parse
/// as a Frame, a Frame without a known body) puts the decoder in a sticky
/// error state: next() returns nothing from then on, feed() discards its
/// input, and error() / errorCode() say what happened. The caller then sends
/// errorFrame() if it wishes and closes that connection. When the peer closes
/// the connection, pendingBytes() > 0 means it stopped in the middle of a
/// frame. Not thread-safe: one decoder per connection.
class FrameDecoder {
 public:
  /// `maxFrameBytes` bounds the serialized Frame after the length prefix; it
  /// is clamped to [1, kLargestMaxFrameBytes].
  explicit FrameDecoder(std::size_t maxFrameBytes = kMaxFrameBytes);

  /// Appends received bytes. Ignored once the decoder is in error.
  void feed(const char* data, std::size_t size);
  void feed(std::string_view bytes) { feed(bytes.data(), bytes.size()); }

  /// Same as feed() without an intermediate buffer: returns room for up to
  /// `size` bytes, which the caller fills (a socket read), then passes the
  /// number of bytes it wrote to commit(). Nothing else may be called in
  /// between. Once the decoder is in error the bytes are discarded.
  char* prepare(std::size_t size);
  void commit(std::size_t size);

  /// The next complete frame, or nothing when more bytes are needed or the
  /// decoder is in error (check hasError()).
  std::optional<wire::Frame> next();

  /// Same as next(), parsing into `frame` (which it clears first) so that a
  /// hot loop can reuse one Frame. Returns true when it produced a frame.
  bool next(wire::Frame& frame);

  bool hasError() const { return m_errorCode != wire::ERROR_CODE_UNSPECIFIED; }
  /// What went wrong, for logs and the ErrorFrame text; empty when no error.
  const std::string& error() const { return m_error; }
  /// The ErrorFrame code for the error; ERROR_CODE_UNSPECIFIED when none.
  wire::ErrorCode errorCode() const { return m_errorCode; }
  /// A Frame carrying ErrorFrame{errorCode(), error()}, to send before
  /// closing the connection.
  wire::Frame errorFrame() const;

  /// Bytes received but not yet returned as a frame (0 in error).
  std::size_t pendingBytes() const { return m_buffer.size() - m_offset; }
  /// Frames returned so far.
  std::uint64_t framesDecoded() const { return m_framesDecoded; }
  std::size_t maxFrameBytes() const { return m_maxFrameBytes; }

 private:
  void fail(wire::ErrorCode code, std::string message);
  void compact();

  std::size_t m_maxFrameBytes;
  std::string m_buffer;
  std::size_t m_offset = 0;    // start of the first unconsumed byte in m_buffer
  std::size_t m_prepared = 0;  // m_buffer's size before prepare()
  std::uint64_t m_framesDecoded = 0;
  wire::ErrorCode m_errorCode = wire::ERROR_CODE_UNSPECIFIED;
  std::string m_error;
};

/// A Frame carrying ErrorFrame{code, text, requestId}.
wire::Frame makeErrorFrame(wire::ErrorCode code, std::string text, std::uint64_t requestId = 0);

/// The name of a Frame's body case ("raft", "handshake", ...; "none" when
/// unset), for logs and error messages.
std::string_view bodyName(const wire::Frame& frame);

}  // namespace copycat::protocol
