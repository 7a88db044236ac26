#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace copycat::protocol {

// One large `bytes` field of a serialized protobuf message, read and written
// without a copy through a protobuf string: snapshots wrap the state machine's
// bytes (hundreds of megabytes) in small messages, and a generated parser
// would copy them once more at every layer.

/// Splits the serialized message `message` into the value of its
/// length-delimited field number `field` and all its other fields: `rest`
/// receives their bytes (the message without that field, ready for
/// ParseFromString) and `value` views the field's bytes inside `message`
/// (empty when absent; the last occurrence wins, as when protobuf parses).
/// A field `field` of another wire type is kept in `rest`, where protobuf
/// treats it as unknown. Returns false when `message` is not well-formed
/// wire data (truncated, a bad tag or wire type, an unbalanced group) or is
/// over 2 GiB, which protobuf does not parse either; `rest` and `value` are
/// then unspecified.
bool splitBytesField(std::string_view message, std::uint32_t field, std::string& rest,
                     std::string_view& value);

/// Appends field number `field` holding `value` (wire type length-delimited)
/// to the serialized message in `out`: what SerializeAsString writes for a
/// message whose highest-numbered field it is. Appends nothing for an empty
/// value, as proto3 does.
void appendBytesField(std::string& out, std::uint32_t field, std::string_view value);

/// Bytes appendBytesField() adds for a value of `size` bytes.
std::size_t bytesFieldSize(std::uint32_t field, std::size_t size);

}  // namespace copycat::protocol
