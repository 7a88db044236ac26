#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include <cereal/archives/portable_binary.hpp>
#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

namespace copycat {

/// Thrown by decoders (decodeObject, SnapshotReader, a Codec's decode) when
/// bytes are truncated, have trailing garbage or claim impossible lengths.
/// Serializer and StateMachine turn it into an Error value.
class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// How one type T becomes bytes and back. `decode` reports bad input by
/// throwing (any std::exception); it is never trusted to validate less.
template <class T>
struct Codec {
  std::function<std::string(const T&)> encode;
  std::function<T(std::string_view)> decode;
};

namespace detail {

/// Writes cereal's portable binary format, little-endian (the bytes
/// cereal::PortableBinaryOutputArchive writes on a little-endian machine)
/// straight into a std::string: no stream, locale or virtual call per value,
/// which made encoding cost several times its decoding.
class StringOutputArchive
    : public cereal::OutputArchive<StringOutputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit StringOutputArchive(std::string& out)
      : cereal::OutputArchive<StringOutputArchive, cereal::AllowEmptyClassElision>(this),
        m_out(out) {
    const std::uint8_t littleEndian = 1;
    (*this)(littleEndian);
  }

  template <std::size_t DataSize>
  void saveBinary(const void* data, std::size_t size) {
    if (size == 0) return;  // an empty container's data() may be null
    const auto* bytes = static_cast<const char*>(data);
    if (DataSize == 1 || cereal::portable_binary_detail::is_little_endian()) {
      m_out.append(bytes, size);
      return;
    }
    for (std::size_t i = 0; i + DataSize <= size; i += DataSize) {
      for (std::size_t j = DataSize; j > 0; --j) m_out.push_back(bytes[i + j - 1]);
    }
  }

 private:
  std::string& m_out;
};

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_SAVE_FUNCTION_NAME(StringOutputArchive& ar,
                                                                    const T& t) {
  ar.template saveBinary<sizeof(T)>(std::addressof(t), sizeof(t));
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(StringOutputArchive& ar, const cereal::NameValuePair<T>& t) {
  ar(t.value);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(StringOutputArchive& ar, const cereal::SizeTag<T>& t) {
  ar(t.size);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(StringOutputArchive& ar, const cereal::BinaryData<T>& bd) {
  using Element = std::remove_cv_t<std::remove_pointer_t<T>>;
  ar.template saveBinary<sizeof(Element)>(bd.data, static_cast<std::size_t>(bd.size));
}

/// Reads cereal's portable binary format (as written by
/// cereal::PortableBinaryOutputArchive) from a byte range, refusing any
/// container length larger than the bytes left, so hostile input cannot make
/// a reader allocate more than a small multiple of its own size.
class BoundedInputArchive
    : public cereal::InputArchive<BoundedInputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit BoundedInputArchive(std::string_view bytes)
      : cereal::InputArchive<BoundedInputArchive, cereal::AllowEmptyClassElision>(this),
        m_bytes(bytes) {
    std::uint8_t streamLittleEndian = 0;
    (*this)(streamLittleEndian);
    if (streamLittleEndian > 1) throw DecodeError("bad portable binary header");
    m_swap = (streamLittleEndian == 1) != cereal::portable_binary_detail::is_little_endian();
  }

  template <std::size_t DataSize>
  void loadBinary(void* data, std::size_t size) {
    if (size > remaining()) {
      throw DecodeError("truncated input: need " + std::to_string(size) + " bytes at offset " +
                        std::to_string(m_offset) + ", have " + std::to_string(remaining()));
    }
    if (size == 0) return;  // an empty container's data() may be null
    std::memcpy(data, m_bytes.data() + m_offset, size);
    m_offset += size;
    if (m_swap && DataSize > 1) {
      auto* p = static_cast<std::uint8_t*>(data);
      for (std::size_t i = 0; i + DataSize <= size; i += DataSize) {
        cereal::portable_binary_detail::swap_bytes<DataSize>(p + i);
      }
    }
  }

  void checkSize(std::uint64_t size) const {
    if (size > remaining()) {
      throw DecodeError("length " + std::to_string(size) + " at offset " +
                        std::to_string(m_offset) + " exceeds the " + std::to_string(remaining()) +
                        " bytes left");
    }
  }

  std::size_t remaining() const { return m_bytes.size() - m_offset; }

  /// The next `size` bytes, consumed (they stay in the input).
  std::string_view take(std::size_t size) {
    checkSize(size);
    const std::string_view bytes = m_bytes.substr(m_offset, size);
    m_offset += size;
    return bytes;
  }

 private:
  std::string_view m_bytes;
  std::size_t m_offset = 0;
  bool m_swap = false;
};

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, T& t) {
  if constexpr (std::is_same_v<T, bool>) {
    std::uint8_t byte = 0;  // any other value than 0 or 1 in a bool is undefined behaviour
    ar.template loadBinary<1>(&byte, 1);
    if (byte > 1) throw DecodeError("bad bool value " + std::to_string(byte));
    t = byte == 1;
  } else {
    ar.template loadBinary<sizeof(T)>(std::addressof(t), sizeof(t));
  }
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, cereal::SizeTag<T>& t) {
  ar(t.size);
  ar.checkSize(static_cast<std::uint64_t>(t.size));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, cereal::BinaryData<T>& bd) {
  using Element = std::remove_cv_t<std::remove_pointer_t<T>>;
  if constexpr (std::is_same_v<Element, bool>) {
    auto* out = static_cast<bool*>(bd.data);
    for (std::size_t i = 0; i < static_cast<std::size_t>(bd.size); ++i) ar(out[i]);
  } else {
    ar.template loadBinary<sizeof(Element)>(bd.data, static_cast<std::size_t>(bd.size));
  }
}

// A string is copied once from the input: cereal's own load would first
// zero-fill it (resize), which for a large snapshot is as much work again.
template <class Traits, class Alloc>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar,
                               std::basic_string<char, Traits, Alloc>& str) {
  cereal::size_type size = 0;
  ar(cereal::make_size_tag(size));
  str.assign(ar.take(static_cast<std::size_t>(size)));
}

}  // namespace detail

/// Encodes `value` through its cereal serialize()/save() in cereal's portable
/// binary format (little-endian, one header byte).
template <class T>
std::string encodeObject(const T& value) {
  std::string out;
  {
    detail::StringOutputArchive archive(out);
    archive(value);
  }
  return out;
}

/// Decodes exactly one T from `bytes`; throws DecodeError on truncated input,
/// impossible lengths or trailing bytes. T must be default-constructible.
template <class T>
T decodeObject(std::string_view bytes) {
  T value{};
  try {
    detail::BoundedInputArchive archive(bytes);
    archive(value);
    if (archive.remaining() != 0) {
      throw DecodeError(std::to_string(archive.remaining()) + " trailing bytes");
    }
  } catch (const DecodeError&) {
    throw;
  } catch (const std::exception& e) {
    throw DecodeError(e.what());
  }
  return value;
}

/// The default codec: T's own cereal serialization.
template <class T>
Codec<T> cerealCodec() {
  return Codec<T>{[](const T& value) { return encodeObject(value); },
                  [](std::string_view bytes) { return decodeObject<T>(bytes); }};
}

}  // namespace copycat

CEREAL_REGISTER_ARCHIVE(copycat::detail::StringOutputArchive)
CEREAL_REGISTER_ARCHIVE(copycat::detail::BoundedInputArchive)
// Needed for types using save_minimal/load_minimal (enums among them).
CEREAL_SETUP_ARCHIVE_TRAITS(copycat::detail::BoundedInputArchive,
                            copycat::detail::StringOutputArchive)
