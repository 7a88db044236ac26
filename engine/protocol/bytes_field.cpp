#include "engine/protocol/bytes_field.h"

#include <climits>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

namespace copycat::protocol {

namespace {

using google::protobuf::internal::WireFormatLite;

std::size_t varintSize(std::uint64_t value) {
  std::size_t size = 1;
  for (; value >= 0x80; value >>= 7) ++size;
  return size;
}

void appendVarint(std::string& out, std::uint64_t value) {
  for (; value >= 0x80; value >>= 7) out.push_back(static_cast<char>((value & 0x7f) | 0x80));
  out.push_back(static_cast<char>(value));
}

std::uint64_t bytesTag(std::uint32_t field) {
  return (std::uint64_t{field} << 3) | WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
}

}  // namespace

bool splitBytesField(std::string_view message, std::uint32_t field, std::string& rest,
                     std::string_view& value) {
  rest.clear();
  value = {};
  if (message.size() > static_cast<std::size_t>(INT_MAX)) return false;
  google::protobuf::io::CodedInputStream input(
      reinterpret_cast<const std::uint8_t*>(message.data()), static_cast<int>(message.size()));
  for (;;) {
    const auto start = static_cast<std::size_t>(input.CurrentPosition());
    if (start == message.size()) return true;
    const std::uint32_t tag = input.ReadTag();
    if (tag == 0) return false;
    if (WireFormatLite::GetTagFieldNumber(tag) == static_cast<int>(field) &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      std::uint32_t length = 0;
      if (!input.ReadVarint32(&length)) return false;
      const auto at = static_cast<std::size_t>(input.CurrentPosition());
      if (length > message.size() - at || !input.Skip(static_cast<int>(length))) return false;
      value = message.substr(at, length);
      continue;
    }
    if (!WireFormatLite::SkipField(&input, tag)) return false;
    rest.append(message.data() + start, static_cast<std::size_t>(input.CurrentPosition()) - start);
  }
}

std::size_t bytesFieldSize(std::uint32_t field, std::size_t size) {
  if (size == 0) return 0;
  return varintSize(bytesTag(field)) + varintSize(size) + size;
}

void appendBytesField(std::string& out, std::uint32_t field, std::string_view value) {
  if (value.empty()) return;
  out.reserve(out.size() + bytesFieldSize(field, value.size()));
  appendVarint(out, bytesTag(field));
  appendVarint(out, value.size());
  out.append(value);
}

}  // namespace copycat::protocol
