#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeindex>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/api/codec.h"
#include "engine/api/operation.h"
#include "engine/api/result.h"

namespace copycat {

/// The stable number that identifies an operation type on the wire and in the
/// log. Never reuse an id for a different type once data has been written.
/// Id 0 is reserved.
using TypeId = std::uint32_t;

/// Thrown at the call site when an operation or result of a type that was
/// never registered is encoded: a programming error of the caller, reported
/// with the C++ type name.
class UnregisteredTypeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// An operation ready to be sent or logged.
struct EncodedOperation {
  TypeId typeId = 0;
  std::string bytes;

  friend bool operator==(const EncodedOperation&, const EncodedOperation&) = default;
};

/// What the serializer knows about a registered type.
struct OperationInfo {
  TypeId id = 0;
  std::string name;  // the demangled C++ type name
  OperationKind kind = OperationKind::Command;
  Consistency defaultConsistency = Consistency::Linearizable;  // queries only
};

/// The demangled name of a C++ type, for messages.
std::string typeName(const std::type_info& type);

/// A decoded operation whose type is known only at run time. Cheap to copy
/// (shared, immutable). `get<Op>()` returns nullptr for any other type.
class AnyOperation {
 public:
  AnyOperation(TypeId id, std::type_index type, OperationKind kind,
               std::shared_ptr<const void> operation)
      : m_id(id), m_type(type), m_kind(kind), m_operation(std::move(operation)) {}

  TypeId typeId() const { return m_id; }
  std::type_index type() const { return m_type; }
  OperationKind kind() const { return m_kind; }

  template <Operation Op>
  const Op* get() const {
    return m_type == std::type_index(typeid(Op)) ? static_cast<const Op*>(m_operation.get())
                                                 : nullptr;
  }

 private:
  TypeId m_id;
  std::type_index m_type;
  OperationKind m_kind;
  std::shared_ptr<const void> m_operation;
};

/// Maps operation types to stable ids and encodes operations and their
/// results. Client and server register the same types with the same ids
/// (typically through one helper such as copycat::kv::registerKvOperations).
///
/// Registration happens at setup; afterwards the const interface may be used
/// from several threads at once. Encoding an unregistered type throws
/// UnregisteredTypeError; every decode returns an Error value on bad input
/// (unknown id, truncated or garbage bytes) and never throws.
class Serializer {
 public:
  /// Registers `Op` under `id` with its own cereal serialization for the
  /// operation and its Result. Registering the same pair again is a no-op;
  /// reusing an id or a type with a different partner throws
  /// std::invalid_argument.
  template <Operation Op>
  void registerType(TypeId id) {
    registerType<Op>(id, cerealCodec<Op>(), cerealCodec<typename Op::Result>());
  }

  /// Same, with a custom codec for the operation (the result uses cereal).
  template <Operation Op>
  void registerType(TypeId id, Codec<Op> codec) {
    registerType<Op>(id, std::move(codec), cerealCodec<typename Op::Result>());
  }

  /// Same, with custom codecs for the operation and for its result.
  template <Operation Op>
  void registerType(TypeId id, Codec<Op> codec, Codec<typename Op::Result> resultCodec) {
    if (!codec.encode || !codec.decode || !resultCodec.encode || !resultCodec.decode) {
      throw std::invalid_argument("codec for " + typeName(typeid(Op)) + " is incomplete");
    }
    auto opCodec = std::make_shared<const Codec<Op>>(std::move(codec));
    auto decoder = [opCodec](std::string_view bytes) {
      return std::shared_ptr<const void>(std::make_shared<const Op>(opCodec->decode(bytes)));
    };
    auto entry = std::make_shared<const Entry>(
        Entry{OperationInfo{id, typeName(typeid(Op)), kindOf<Op>, defaultConsistencyOf<Op>()},
              std::type_index(typeid(Op)), opCodec,
              std::make_shared<const Codec<typename Op::Result>>(std::move(resultCodec)),
              std::move(decoder)});
    add(std::move(entry));
  }

  /// The id `Op` was registered with, if any.
  template <Operation Op>
  std::optional<TypeId> typeIdOf() const {
    const Entry* e = find(std::type_index(typeid(Op)));
    return e ? std::optional<TypeId>(e->info.id) : std::nullopt;
  }

  /// Registration details of `id`, or nullptr.
  const OperationInfo* info(TypeId id) const;
  bool contains(TypeId id) const { return info(id) != nullptr; }
  bool contains(std::type_index type) const { return find(type) != nullptr; }
  std::vector<OperationInfo> registeredTypes() const;

  /// Encodes an operation. Throws UnregisteredTypeError naming the type when
  /// `Op` was not registered; exceptions of a custom encoder propagate.
  template <Operation Op>
  EncodedOperation encode(const Op& operation) const {
    const Entry& e = require<Op>();
    return EncodedOperation{e.info.id, codecOf<Op>(e).encode(operation)};
  }

  /// Decodes an operation of any registered type. Errors: UnknownOperation
  /// for an unregistered id, MalformedOperation when the codec rejects the
  /// bytes (truncated, trailing garbage, impossible lengths...).
  Expected<AnyOperation> decode(TypeId id, std::string_view bytes) const;

  /// Decodes bytes known to hold an `Op` (as the client's own decode of its
  /// request in tests, or a tool). Same errors as decode(), plus
  /// UnknownOperation when `id` belongs to another type.
  template <Operation Op>
  Expected<Op> decodeAs(TypeId id, std::string_view bytes) const {
    auto any = decode(id, bytes);
    if (!any) return any.error();
    const Op* op = any->template get<Op>();
    if (!op) {
      return Error{ErrorCode::UnknownOperation,
                   "type id " + std::to_string(id) + " is not " + typeName(typeid(Op))};
    }
    return *op;
  }

  /// Encodes the result of an `Op`. Throws UnregisteredTypeError when `Op`
  /// was not registered.
  template <Operation Op>
  std::string encodeResult(const typename Op::Result& result) const {
    return resultCodecOf<Op>(require<Op>()).encode(result);
  }

  /// Decodes the result of an `Op`: MalformedResult on bad bytes,
  /// UnknownOperation when `Op` was not registered. Never throws.
  template <Operation Op>
  Expected<typename Op::Result> decodeResult(std::string_view bytes) const {
    const Entry* e = find(std::type_index(typeid(Op)));
    if (!e) return Error{ErrorCode::UnknownOperation, notRegistered(typeid(Op))};
    try {
      return resultCodecOf<Op>(*e).decode(bytes);
    } catch (const std::exception& ex) {
      return Error{ErrorCode::MalformedResult,
                   "malformed result of " + e->info.name + ": " + ex.what()};
    } catch (...) {
      return Error{ErrorCode::MalformedResult, "malformed result of " + e->info.name};
    }
  }

 private:
  struct Entry {
    OperationInfo info;
    std::type_index type;
    std::shared_ptr<const void> codec;        // Codec<Op>
    std::shared_ptr<const void> resultCodec;  // Codec<Op::Result>
    std::function<std::shared_ptr<const void>(std::string_view)> decode;
  };

  void add(std::shared_ptr<const Entry> entry);
  const Entry* find(std::type_index type) const;
  static std::string notRegistered(const std::type_info& type);

  template <Operation Op>
  const Entry& require() const {
    const Entry* e = find(std::type_index(typeid(Op)));
    if (!e) throw UnregisteredTypeError(notRegistered(typeid(Op)));
    return *e;
  }
  template <Operation Op>
  static const Codec<Op>& codecOf(const Entry& e) {
    return *static_cast<const Codec<Op>*>(e.codec.get());
  }
  template <Operation Op>
  static const Codec<typename Op::Result>& resultCodecOf(const Entry& e) {
    return *static_cast<const Codec<typename Op::Result>*>(e.resultCodec.get());
  }

  std::unordered_map<TypeId, std::shared_ptr<const Entry>> m_byId;
  std::unordered_map<std::type_index, std::shared_ptr<const Entry>> m_byType;
};

}  // namespace copycat
