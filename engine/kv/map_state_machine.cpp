#include "engine/kv/map_state_machine.h"

namespace copycat::kv {

void registerKvOperations(Serializer& serializer) {
  serializer.registerType<PutCommand>(1);
  serializer.registerType<GetQuery>(2);
  serializer.registerType<RemoveCommand>(3);
  serializer.registerType<CasCommand>(4);
  serializer.registerType<SizeQuery>(5);
  serializer.registerType<KeysQuery>(6);
}

MapStateMachine::MapStateMachine() {
  on<PutCommand>(&MapStateMachine::put);
  on<GetQuery>(&MapStateMachine::get);
  on<RemoveCommand>(&MapStateMachine::remove);
  on<CasCommand>(&MapStateMachine::cas);
  on<SizeQuery>([this](const Commit<SizeQuery>&) { return std::uint64_t(m_map.size()); });
  on<KeysQuery>([this](const Commit<KeysQuery>&) {
    std::vector<std::string> keys;
    for (const auto& entry : m_map) keys.push_back(entry.first);
    return keys;
  });
}

std::optional<std::string> MapStateMachine::put(Commit<PutCommand>& commit) {
  auto [it, inserted] = m_map.try_emplace(commit->key, commit->value);
  if (inserted) return std::nullopt;
  return std::exchange(it->second, commit->value);
}

std::optional<std::string> MapStateMachine::get(const Commit<GetQuery>& commit) const {
  const auto it = m_map.find(commit->key);
  return it == m_map.end() ? std::nullopt : std::optional<std::string>(it->second);
}

std::optional<std::string> MapStateMachine::remove(Commit<RemoveCommand>& commit) {
  auto node = m_map.extract(commit->key);
  return node ? std::optional<std::string>(std::move(node.mapped())) : std::nullopt;
}

bool MapStateMachine::cas(Commit<CasCommand>& commit) {
  const auto it = m_map.find(commit->key);
  const std::optional<std::string> current =
      it == m_map.end() ? std::nullopt : std::optional<std::string>(it->second);
  if (current != commit->expected) return false;
  m_map[commit->key] = commit->value;
  return true;
}

void MapStateMachine::snapshot(SnapshotWriter& writer) const { writer.writeObject(m_map); }

void MapStateMachine::install(SnapshotReader& reader) {
  m_map = reader.readObject<std::map<std::string, std::string>>();
}

}  // namespace copycat::kv
