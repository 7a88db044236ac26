#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/api/serializer.h"
#include "engine/api/state_machine.h"

namespace copycat::kv {

/// Sets `key` to `value`; returns the previous value.
struct PutCommand : Command<std::optional<std::string>> {
  std::string key, value;

  PutCommand() = default;
  PutCommand(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
  template <class Archive>
  void serialize(Archive& archive) {
    archive(key, value);
  }
};

/// Reads `key`; linearizable unless the client asks otherwise.
struct GetQuery : Query<std::optional<std::string>> {
  std::string key;

  GetQuery() = default;
  explicit GetQuery(std::string k) : key(std::move(k)) {}
  template <class Archive>
  void serialize(Archive& archive) {
    archive(key);
  }
};

/// Removes `key`; returns the removed value.
struct RemoveCommand : Command<std::optional<std::string>> {
  std::string key;

  RemoveCommand() = default;
  explicit RemoveCommand(std::string k) : key(std::move(k)) {}
  template <class Archive>
  void serialize(Archive& archive) {
    archive(key);
  }
};

/// Compare-and-set: sets `key` to `value` only if its current value equals
/// `expected` (nullopt: only if the key is absent); returns whether it did.
struct CasCommand : Command<bool> {
  std::string key;
  std::optional<std::string> expected;
  std::string value;

  CasCommand() = default;
  CasCommand(std::string k, std::optional<std::string> e, std::string v)
      : key(std::move(k)), expected(std::move(e)), value(std::move(v)) {}
  template <class Archive>
  void serialize(Archive& archive) {
    archive(key, expected, value);
  }
};

/// Number of keys.
struct SizeQuery : Query<std::uint64_t> {
  template <class Archive>
  void serialize(Archive&) {}
};

/// All keys, sorted.
struct KeysQuery : Query<std::vector<std::string>> {
  template <class Archive>
  void serialize(Archive&) {}
};

/// Registers the map operations under their fixed ids 1 to 6 (Put, Get,
/// Remove, Cas, Size, Keys). Client and server both call it.
void registerKvOperations(Serializer& serializer);

/// The example replicated state machine: a sorted string map. It is the
/// README's embedding example; keep it small.
class MapStateMachine : public StateMachine, public Snapshottable {
 public:
  MapStateMachine();

  void snapshot(SnapshotWriter& writer) const override;
  void install(SnapshotReader& reader) override;

  const std::map<std::string, std::string>& data() const { return m_map; }

 private:
  std::optional<std::string> put(Commit<PutCommand>& commit);
  std::optional<std::string> get(const Commit<GetQuery>& commit) const;
  std::optional<std::string> remove(Commit<RemoveCommand>& commit);
  bool cas(Commit<CasCommand>& commit);

  std::map<std::string, std::string> m_map;
};

}  // namespace copycat::kv
