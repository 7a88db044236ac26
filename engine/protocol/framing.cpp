#include "engine/protocol/framing.h"

#include <algorithm>
#include <utility>

namespace copycat::protocol {

namespace {

std::size_t clampMax(std::size_t maxFrameBytes) {
  return std::clamp<std::size_t>(maxFrameBytes, 1, kLargestMaxFrameBytes);
}

std::uint32_t readBigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) |
         std::uint32_t{u[3]};
}

void writeBigEndian32(char* p, std::uint32_t value) {
  p[0] = static_cast<char>((value >> 24) & 0xff);
  p[1] = static_cast<char>((value >> 16) & 0xff);
  p[2] = static_cast<char>((value >> 8) & 0xff);
  p[3] = static_cast<char>(value & 0xff);
}

// Below this many consumed bytes the buffer is not compacted: moving a few
// kilobytes is not worth a memmove per feed.
constexpr std::size_t kCompactThreshold = 64 * 1024;

}  // namespace

FrameEncoder::FrameEncoder(std::size_t maxFrameBytes) : m_maxFrameBytes(clampMax(maxFrameBytes)) {}

std::string FrameEncoder::encode(const wire::Frame& frame) const {
  std::string out;
  encodeTo(frame, out);
  return out;
}

bool FrameEncoder::encodeTo(const wire::Frame& frame, std::string& out) const {
  if (frame.body_case() == wire::Frame::BODY_NOT_SET) return false;
  const std::size_t size = frame.ByteSizeLong();
  if (size == 0 || size > m_maxFrameBytes) return false;
  const std::size_t start = out.size();
  out.resize(start + kLengthPrefixBytes + size);
  char* p = out.data() + start;
  writeBigEndian32(p, static_cast<std::uint32_t>(size));
  frame.SerializeWithCachedSizesToArray(reinterpret_cast<std::uint8_t*>(p + kLengthPrefixBytes));
  return true;
}

FrameDecoder::FrameDecoder(std::size_t maxFrameBytes) : m_maxFrameBytes(clampMax(maxFrameBytes)) {}

void FrameDecoder::feed(const char* data, std::size_t size) {
  if (hasError() || size == 0) return;
  compact();
  m_buffer.append(data, size);
}

char* FrameDecoder::prepare(std::size_t size) {
  compact();
  m_prepared = m_buffer.size();
  m_buffer.resize(m_prepared + size);
  return m_buffer.data() + m_prepared;
}

void FrameDecoder::commit(std::size_t size) {
  if (hasError()) {
    std::string().swap(m_buffer);
    m_offset = 0;
    return;
  }
  m_buffer.resize(m_prepared + std::min(size, m_buffer.size() - m_prepared));
}

void FrameDecoder::compact() {
  if (m_offset == m_buffer.size()) {
    m_buffer.clear();
    m_offset = 0;
  } else if (m_offset >= kCompactThreshold && m_offset >= m_buffer.size() / 2) {
    // Moves at most as many bytes as were consumed since the last compaction:
    // linear overall.
    m_buffer.erase(0, m_offset);
    m_offset = 0;
  }
}

std::optional<wire::Frame> FrameDecoder::next() {
  wire::Frame frame;
  if (!next(frame)) return std::nullopt;
  return frame;
}

bool FrameDecoder::next(wire::Frame& frame) {
  if (hasError()) return false;
  const std::size_t available = m_buffer.size() - m_offset;
  if (available < kLengthPrefixBytes) return false;
  const std::size_t length = readBigEndian32(m_buffer.data() + m_offset);
  const std::uint64_t frameNumber = m_framesDecoded + 1;
  if (length == 0) {
    fail(wire::ERROR_CODE_MALFORMED_FRAME,
         "frame " + std::to_string(frameNumber) + " has a length prefix of zero");
    return false;
  }
  if (length > m_maxFrameBytes) {
    fail(wire::ERROR_CODE_FRAME_TOO_LARGE, "frame " + std::to_string(frameNumber) +
                                               " has a length prefix of " + std::to_string(length) +
                                               " bytes, over the maximum of " +
                                               std::to_string(m_maxFrameBytes) + " bytes");
    return false;
  }
  if (available - kLengthPrefixBytes < length) return false;

  frame.Clear();
  const char* body = m_buffer.data() + m_offset + kLengthPrefixBytes;
  if (!frame.ParseFromArray(body, static_cast<int>(length))) {
    fail(wire::ERROR_CODE_MALFORMED_FRAME, "frame " + std::to_string(frameNumber) + " (" +
                                               std::to_string(length) +
                                               " bytes) does not parse as a copycat.wire.Frame");
    return false;
  }
  if (frame.body_case() == wire::Frame::BODY_NOT_SET) {
    const auto& unknown = frame.GetReflection()->GetUnknownFields(frame);
    if (unknown.field_count() > 0) {
      fail(wire::ERROR_CODE_UNKNOWN_MESSAGE, "frame " + std::to_string(frameNumber) +
                                                 " carries an unknown message type (Frame field " +
                                                 std::to_string(unknown.field(0).number()) +
                                                 "); this side speaks protocol version " +
                                                 std::to_string(kProtocolVersion));
    } else {
      fail(wire::ERROR_CODE_UNKNOWN_MESSAGE,
           "frame " + std::to_string(frameNumber) + " has no message body");
    }
    frame.Clear();
    return false;
  }
  m_offset += kLengthPrefixBytes + length;
  ++m_framesDecoded;
  if (m_offset == m_buffer.size()) {
    m_buffer.clear();
    m_offset = 0;
  }
  return true;
}

void FrameDecoder::fail(wire::ErrorCode code, std::string message) {
  m_errorCode = code;
  m_error = std::move(message);
  std::string().swap(m_buffer);
  m_offset = 0;
}

wire::Frame FrameDecoder::errorFrame() const { return makeErrorFrame(m_errorCode, m_error); }

wire::Frame makeErrorFrame(wire::ErrorCode code, std::string text, std::uint64_t requestId) {
  wire::Frame frame;
  wire::ErrorFrame* error = frame.mutable_error();
  error->set_code(code);
  error->set_text(std::move(text));
  error->set_request_id(requestId);
  return frame;
}

std::string_view bodyName(const wire::Frame& frame) {
  if (frame.body_case() == wire::Frame::BODY_NOT_SET) return "none";
  const auto* field = wire::Frame::descriptor()->FindFieldByNumber(frame.body_case());
  if (field == nullptr) return "unknown";
  return field->name();
}

}  // namespace copycat::protocol
