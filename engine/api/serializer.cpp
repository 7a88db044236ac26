#include "engine/api/serializer.h"

#include <algorithm>
#include <cstdlib>
#include <memory>

#include <cxxabi.h>

namespace copycat {

std::string typeName(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> demangled(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
  return status == 0 && demangled ? std::string(demangled.get()) : std::string(type.name());
}

void Serializer::add(std::shared_ptr<const Entry> entry) {
  const TypeId id = entry->info.id;
  if (id == 0) {
    throw std::invalid_argument("type id 0 is reserved (registering " + entry->info.name + ")");
  }
  const auto byId = m_byId.find(id);
  const auto byType = m_byType.find(entry->type);
  if (byId != m_byId.end() && byId->second->type != entry->type) {
    throw std::invalid_argument("type id " + std::to_string(id) + " is already registered for " +
                                byId->second->info.name + ", cannot register " + entry->info.name);
  }
  if (byType != m_byType.end() && byType->second->info.id != id) {
    throw std::invalid_argument(entry->info.name + " is already registered with type id " +
                                std::to_string(byType->second->info.id) + ", not " +
                                std::to_string(id));
  }
  if (byId != m_byId.end()) return;  // the same registration again
  m_byId.emplace(id, entry);
  m_byType.emplace(entry->type, std::move(entry));
}

const Serializer::Entry* Serializer::find(std::type_index type) const {
  const auto it = m_byType.find(type);
  return it == m_byType.end() ? nullptr : it->second.get();
}

const OperationInfo* Serializer::info(TypeId id) const {
  const auto it = m_byId.find(id);
  return it == m_byId.end() ? nullptr : &it->second->info;
}

std::vector<OperationInfo> Serializer::registeredTypes() const {
  std::vector<OperationInfo> result;
  result.reserve(m_byId.size());
  for (const auto& [id, entry] : m_byId) result.push_back(entry->info);
  std::sort(result.begin(), result.end(),
            [](const OperationInfo& a, const OperationInfo& b) { return a.id < b.id; });
  return result;
}

std::string Serializer::notRegistered(const std::type_info& type) {
  return "operation type " + typeName(type) + " is not registered with the serializer";
}

Expected<AnyOperation> Serializer::decode(TypeId id, std::string_view bytes) const {
  const auto it = m_byId.find(id);
  if (it == m_byId.end()) {
    return Error{ErrorCode::UnknownOperation, "unknown operation type id " + std::to_string(id)};
  }
  const Entry& e = *it->second;
  try {
    return AnyOperation(id, e.type, e.info.kind, e.decode(bytes));
  } catch (const std::exception& ex) {
    return Error{ErrorCode::MalformedOperation, "malformed " + e.info.name + " (type id " +
                                                    std::to_string(id) + "): " + ex.what()};
  } catch (...) {
    return Error{ErrorCode::MalformedOperation,
                 "malformed " + e.info.name + " (type id " + std::to_string(id) + ")"};
  }
}

}  // namespace copycat
