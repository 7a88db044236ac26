// Three Copycat servers in one process replicate the example map over loopback TCP.
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <QCoreApplication>
#include <QTemporaryDir>

#include "engine/client/event_loop.h"
#include "engine/kv/map_state_machine.h"
#include "engine/server/server.h"

using copycat::server::Server;
namespace kv = copycat::kv;

int main(int argc, char* argv[]) {
  copycat::useFastEventLoop();
  QCoreApplication app(argc, argv);
  QTemporaryDir data;  // the servers' logs and snapshots, removed at exit
  QStringList members;
  for (quint16 port : copycat::server::freeLoopbackPorts(3))
    members << QStringLiteral("127.0.0.1:%1").arg(port);

  std::vector<std::unique_ptr<Server>> servers;
  try {
    for (const QString& address : members) {
      servers.push_back(
          Server::builder(address)
              .withStateMachine([] { return std::make_unique<kv::MapStateMachine>(); })
              .withRegistration(kv::registerKvOperations)
              .withStorage(copycat::storage::StorageLevel::Disk, data.filePath(address))
              .build());
    }
    for (auto& server : servers) server->bootstrap(members).waitForFinished();  // or throws

    Server* leader = nullptr;
    for (int wait = 0; wait < 300 && !leader; ++wait) {  // up to 30 s for an election
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      for (auto& server : servers)
        if (server->isLeader()) leader = server.get();
    }
    if (!leader) throw std::runtime_error("no leader elected");

    leader->submit(kv::PutCommand("greeting", "hello, copycat")).result().value();
    std::optional<std::string> value = leader->submit(kv::GetQuery("greeting")).result().value();
    std::cout << "greeting = " << value.value_or("(none)") << std::endl;
    for (auto& server : servers) server->shutdown().waitForFinished();
    return value == "hello, copycat" ? 0 : 1;
  } catch (const std::exception& error) {  // ServerError, BadExpectedAccess...
    std::cerr << "failed: " << error.what() << std::endl;
    return 1;
  }
}
