// copycat: the command-line client of a Copycat cluster running the example
// key-value state machine (engine/kv).
//
//   copycat --cluster HOST:PORT[,HOST:PORT...] [--timeout-ms N] [--cluster-id ID]
//           [--connect-to leader|any|followers] COMMAND
//
// Commands: put KEY VALUE, get KEY [--consistency linearizable|lease|sequential],
// remove KEY, cas KEY EXPECTED NEW, status, members, join HOST:PORT,
// promote HOST:PORT, demote HOST:PORT,
// leave HOST:PORT, shell. Results are JSON on stdout, errors also on stderr.
// --connect-to (get and shell) picks the server that answers sequential gets
// (Client::Builder::withServerSelection): the leader, any open connection
// (the default: the leader's when there is one) or a follower when one is
// reachable; other operations always go to the leader. In the shell it is
// set for the whole session: a line may repeat the session's value only.
// Exit status: 0 success, 1 the operation failed, 2 usage error, 3 the
// cluster could not be reached within the timeout.

#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include <QCommandLineOption>
#include <QCommandLineParser>
#include <QCoreApplication>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QJsonValue>
#include <QStringList>

#include "engine/client/client.h"
#include "engine/client/event_loop.h"
#include "engine/kv/map_state_machine.h"

namespace {

using copycat::Consistency;
using copycat::Error;
using copycat::ErrorCode;
using copycat::Expected;
using copycat::client::Client;
using copycat::client::MemberInfo;
using copycat::client::ServerSelection;
using copycat::client::ServerStatus;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

/// One parsed command line (or shell line).
struct Request {
  QString op;
  QStringList args;
  std::optional<Consistency> consistency;
  /// --connect-to as given, echoed in a get's JSON ("connect_to").
  QString connectTo;
};

/// The JSON answer to a request and the exit status it implies.
struct Response {
  QJsonValue json;
  int exitCode = kExitOk;
  QString error;
};

void writeLine(std::FILE* out, const QByteArray& bytes) {
  std::fwrite(bytes.constData(), 1, static_cast<std::size_t>(bytes.size()), out);
  std::fputc('\n', out);
  std::fflush(out);
}

void printJson(const QJsonValue& value) {
  const QJsonDocument document =
      value.isArray() ? QJsonDocument(value.toArray()) : QJsonDocument(value.toObject());
  writeLine(stdout, document.toJson(QJsonDocument::Compact));
}

void printError(const QString& message) {
  writeLine(stderr, (QStringLiteral("copycat: ") + message).toUtf8());
}

std::optional<Consistency> parseConsistency(const QString& word) {
  if (word == QLatin1String("linearizable")) return Consistency::Linearizable;
  if (word == QLatin1String("lease")) return Consistency::LinearizableLease;
  if (word == QLatin1String("sequential")) return Consistency::Sequential;
  return std::nullopt;
}

/// The server selection a --connect-to value names (ServerSelection), or
/// the usage error. Serves the command line and shell lines alike.
std::variant<ServerSelection, QString> parseConnectTo(const QString& word) {
  if (word == QLatin1String("leader")) return ServerSelection::Leader;
  if (word == QLatin1String("any")) return ServerSelection::Any;
  if (word == QLatin1String("followers")) return ServerSelection::Followers;
  return QStringLiteral("bad --connect-to '%1' (leader, any or followers)").arg(word);
}

/// Removes `--NAME VALUE` or `--NAME=VALUE` from a shell line's words and
/// returns VALUE; nothing when the option is absent.
std::optional<QString> takeOption(QStringList& words, const QString& name) {
  const QString flag = QStringLiteral("--") + name;
  const QString prefix = flag + QLatin1Char('=');
  for (qsizetype i = 0; i < words.size(); ++i) {
    if (words[i].startsWith(prefix)) {
      QString value = words[i].mid(prefix.size());
      words.removeAt(i);
      return value;
    }
    if (words[i] == flag && i + 1 < words.size()) {
      QString value = words[i + 1];
      words.remove(i, 2);
      return value;
    }
  }
  return std::nullopt;
}

/// The membership change a command word names, if any.
std::optional<copycat::client::MembershipChange> membershipChangeOf(const QString& op) {
  using copycat::client::MembershipChange;
  if (op == QLatin1String("join")) return MembershipChange::Join;
  if (op == QLatin1String("leave")) return MembershipChange::Leave;
  if (op == QLatin1String("promote")) return MembershipChange::Promote;
  if (op == QLatin1String("demote")) return MembershipChange::Demote;
  return std::nullopt;
}

/// Checks a command and its arguments; returns the request or a usage error.
std::variant<Request, QString> parseRequest(const QStringList& tokens,
                                            const QString& consistencyOption) {
  if (tokens.isEmpty()) return QStringLiteral("missing command");
  Request request;
  request.op = tokens.front();
  request.args = tokens.mid(1);
  const qsizetype n = request.args.size();
  const auto arity = [&](qsizetype expected, const char* usage) -> std::optional<QString> {
    if (n == expected) return std::nullopt;
    return QStringLiteral("%1 arguments for '%2' (usage: %3)")
        .arg(n < expected ? QStringLiteral("missing") : QStringLiteral("extra"), request.op,
             QLatin1String(usage));
  };
  std::optional<QString> error;
  if (request.op == QLatin1String("put")) {
    error = arity(2, "put KEY VALUE");
  } else if (request.op == QLatin1String("get")) {
    QString word = consistencyOption;
    if (n == 2) {
      if (!word.isEmpty()) return QStringLiteral("consistency given twice");
      word = request.args.takeLast();
    } else {
      error = arity(1, "get KEY [linearizable|lease|sequential]");
    }
    if (!error && !word.isEmpty()) {
      request.consistency = parseConsistency(word);
      if (!request.consistency) {
        return QStringLiteral("bad consistency '%1' (linearizable, lease or sequential)").arg(word);
      }
    }
  } else if (request.op == QLatin1String("remove")) {
    error = arity(1, "remove KEY");
  } else if (request.op == QLatin1String("cas")) {
    error = arity(3, "cas KEY EXPECTED NEW");
  } else if (request.op == QLatin1String("status") || request.op == QLatin1String("members")) {
    error = arity(0, request.op == QLatin1String("status") ? "status" : "members");
  } else if (membershipChangeOf(request.op)) {
    error = arity(1, qPrintable(request.op + QStringLiteral(" HOST:PORT")));
    if (!error && !copycat::client::isValidAddress(request.args.front())) {
      return QStringLiteral("invalid address '%1' (expected HOST:PORT)").arg(request.args.front());
    }
  } else {
    return QStringLiteral("unknown command '%1'").arg(request.op);
  }
  if (error) return *error;
  if (!consistencyOption.isEmpty() && request.op != QLatin1String("get")) {
    return QStringLiteral("--consistency applies to get only");
  }
  return request;
}

/// Splits a shell line into words: whitespace separates, "double quotes"
/// group (with \" and \\ inside). Nothing on an unterminated quote.
std::optional<QStringList> tokenize(const QString& line) {
  QStringList tokens;
  QString current;
  bool inWord = false;
  bool quoted = false;
  for (qsizetype i = 0; i < line.size(); ++i) {
    const QChar c = line.at(i);
    if (quoted) {
      if (c == QLatin1Char('\\') && i + 1 < line.size()) {
        current += line.at(++i);
      } else if (c == QLatin1Char('"')) {
        quoted = false;
      } else {
        current += c;
      }
    } else if (c.isSpace()) {
      if (inWord) tokens.append(current);
      current.clear();
      inWord = false;
    } else if (c == QLatin1Char('"')) {
      quoted = true;
      inWord = true;
    } else {
      current += c;
      inWord = true;
    }
  }
  if (quoted) return std::nullopt;
  if (inWord) tokens.append(current);
  return tokens;
}

QJsonValue optionalString(const std::optional<std::string>& value) {
  return value ? QJsonValue(QString::fromStdString(*value)) : QJsonValue(QJsonValue::Null);
}

int exitCodeOf(const Error& error) {
  return error.code == ErrorCode::Unavailable ? kExitUnreachable : kExitFailed;
}

QJsonObject failure(QJsonObject object, const Error& error, Response& response) {
  object.insert(QStringLiteral("ok"), false);
  object.insert(QStringLiteral("error"), QString::fromStdString(error.message));
  object.insert(QStringLiteral("code"), QString::fromUtf8(copycat::toString(error.code)));
  response.exitCode = exitCodeOf(error);
  response.error = QStringLiteral("%1 failed: %2: %3")
                       .arg(object.value(QStringLiteral("op")).toString(),
                            QString::fromUtf8(copycat::toString(error.code)),
                            QString::fromStdString(error.message));
  return object;
}

QJsonArray membersJson(const std::vector<MemberInfo>& members) {
  QJsonArray array;
  for (const MemberInfo& member : members) {
    array.append(QJsonObject{
        {QStringLiteral("id"), static_cast<qint64>(member.id)},
        {QStringLiteral("address"), member.address},
        {QStringLiteral("kind"),
         member.voter ? QStringLiteral("voter") : QStringLiteral("learner")},
    });
  }
  return array;
}

QJsonObject statusJson(const ServerStatus& status) {
  if (!status.error.isEmpty()) {
    QJsonObject object{{QStringLiteral("address"), status.address},
                       {QStringLiteral("error"), status.error}};
    if (status.id != 0) object.insert(QStringLiteral("id"), static_cast<qint64>(status.id));
    return object;
  }
  return QJsonObject{
      {QStringLiteral("id"), static_cast<qint64>(status.id)},
      {QStringLiteral("address"), status.address},
      {QStringLiteral("role"), status.role},
      {QStringLiteral("term"), static_cast<qint64>(status.term)},
      {QStringLiteral("leader"), static_cast<qint64>(status.leaderId)},
      {QStringLiteral("leader_address"), status.leaderAddress},
      {QStringLiteral("commit"), static_cast<qint64>(status.commit)},
      {QStringLiteral("applied"), static_cast<qint64>(status.applied)},
      {QStringLiteral("last_index"), static_cast<qint64>(status.lastIndex)},
      {QStringLiteral("durable"), static_cast<qint64>(status.durable)},
      {QStringLiteral("snapshot_index"), static_cast<qint64>(status.snapshotIndex)},
      {QStringLiteral("log_bytes"), static_cast<qint64>(status.logBytes)},
  };
}

/// Runs one request. `shell`: status and members are wrapped in an object.
Response run(Client& client, const Request& request, bool shell) {
  namespace kv = copycat::kv;
  Response response;
  QJsonObject object{{QStringLiteral("op"), request.op}};
  const auto ok = [&](QJsonValue result, copycat::Index index, const QString& server) {
    object.insert(QStringLiteral("ok"), true);
    object.insert(QStringLiteral("result"), result);
    object.insert(QStringLiteral("index"), static_cast<qint64>(index));
    object.insert(QStringLiteral("server"), server);
    response.json = object;
  };
  const QString op = request.op;
  if (op == QLatin1String("put") || op == QLatin1String("get") || op == QLatin1String("remove")) {
    const std::string key = request.args.at(0).toStdString();
    object.insert(QStringLiteral("key"), request.args.at(0));
    Expected<copycat::client::Indexed<std::optional<std::string>>> result =
        Error{ErrorCode::InternalError, "not run"};
    if (op == QLatin1String("put")) {
      object.insert(QStringLiteral("value"), request.args.at(1));
      result = client.submitIndexed(kv::PutCommand(key, request.args.at(1).toStdString())).result();
    } else if (op == QLatin1String("get")) {
      if (request.consistency) {
        object.insert(QStringLiteral("consistency"),
                      QString::fromUtf8(copycat::toString(*request.consistency)));
      }
      if (!request.connectTo.isEmpty()) {
        object.insert(QStringLiteral("connect_to"), request.connectTo);
      }
      result = client.submitIndexed(kv::GetQuery(key), request.consistency).result();
    } else {
      result = client.submitIndexed(kv::RemoveCommand(key)).result();
    }
    if (!result) {
      response.json = failure(object, result.error(), response);
    } else {
      ok(optionalString(result->value), result->index, result->server);
    }
    return response;
  }
  if (op == QLatin1String("cas")) {
    object.insert(QStringLiteral("key"), request.args.at(0));
    object.insert(QStringLiteral("expected"), request.args.at(1));
    object.insert(QStringLiteral("value"), request.args.at(2));
    auto result = client
                      .submitIndexed(kv::CasCommand(request.args.at(0).toStdString(),
                                                    request.args.at(1).toStdString(),
                                                    request.args.at(2).toStdString()))
                      .result();
    if (!result) {
      response.json = failure(object, result.error(), response);
    } else {
      ok(QJsonValue(result->value), result->index, result->server);
    }
    return response;
  }
  if (op == QLatin1String("status") || op == QLatin1String("members")) {
    auto result = client.statusAll().result();
    if (!result) {
      response.json = failure(object, result.error(), response);
      return response;
    }
    QJsonArray array;
    if (op == QLatin1String("status")) {
      for (const ServerStatus& status : *result) array.append(statusJson(status));
    } else {
      const ServerStatus* view = nullptr;
      for (const ServerStatus& status : *result) {
        if (!status.error.isEmpty()) continue;
        if (!view || status.role == QLatin1String("leader")) view = &status;
      }
      if (view) array = membersJson(view->members);
    }
    if (shell) {
      object.insert(QStringLiteral("ok"), true);
      object.insert(QStringLiteral("result"), array);
      response.json = object;
    } else {
      response.json = array;
    }
    return response;
  }
  // join / leave / promote / demote
  object.insert(QStringLiteral("address"), request.args.at(0));
  auto result = client.changeMembership(*membershipChangeOf(op), request.args.at(0)).result();
  if (!result) {
    response.json = failure(object, result.error(), response);
    return response;
  }
  object.insert(QStringLiteral("ok"), true);
  object.insert(QStringLiteral("index"), static_cast<qint64>(result->index));
  object.insert(QStringLiteral("node_id"), static_cast<qint64>(result->nodeId));
  object.insert(QStringLiteral("members"), membersJson(result->members));
  response.json = object;
  return response;
}

/// `connectTo`: the session's --connect-to value (empty when not given).
int runShell(Client& client, const QString& connectTo) {
  const Expected<void> connected = client.connect().result();
  if (!connected) {
    printError(QStringLiteral("cannot open a session: %1")
                   .arg(QString::fromStdString(connected.error().message)));
    return exitCodeOf(connected.error());
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    const QString text = QString::fromStdString(line).trimmed();
    if (text.isEmpty()) continue;
    const std::optional<QStringList> tokens = tokenize(text);
    if (!tokens) {
      printJson(QJsonObject{{QStringLiteral("ok"), false},
                            {QStringLiteral("error"), QStringLiteral("unterminated quote")}});
      continue;
    }
    // `--consistency C` (or `--consistency=C`) as on the command line, and
    // `--connect-to S`, which must name the session's own selection.
    QStringList words = *tokens;
    const QString consistency =
        takeOption(words, QStringLiteral("consistency")).value_or(QString());
    const std::optional<QString> lineConnectTo = takeOption(words, QStringLiteral("connect-to"));
    std::variant<Request, QString> parsed = parseRequest(words, consistency);
    if (lineConnectTo && std::holds_alternative<Request>(parsed)) {
      const std::variant<ServerSelection, QString> selection = parseConnectTo(*lineConnectTo);
      const std::variant<ServerSelection, QString> current =
          parseConnectTo(connectTo.isEmpty() ? QStringLiteral("any") : connectTo);
      if (std::holds_alternative<QString>(selection)) {
        parsed = std::get<QString>(selection);
      } else if (std::get<ServerSelection>(selection) != std::get<ServerSelection>(current)) {
        parsed = QStringLiteral(
                     "--connect-to is set for the whole shell session (here '%1'): "
                     "give it before 'shell'")
                     .arg(connectTo.isEmpty() ? QStringLiteral("any") : connectTo);
      } else if (std::get<Request>(parsed).op != QLatin1String("get")) {
        parsed = QStringLiteral("--connect-to applies to get only");
      }
    }
    if (Request* request = std::get_if<Request>(&parsed);
        request && request->op == QLatin1String("get")) {
      request->connectTo = connectTo;
    }
    if (const QString* error = std::get_if<QString>(&parsed)) {
      QJsonObject object{{QStringLiteral("ok"), false}, {QStringLiteral("error"), *error}};
      if (!tokens->isEmpty()) object.insert(QStringLiteral("op"), tokens->front());
      printJson(object);
      continue;
    }
    printJson(run(client, std::get<Request>(parsed), true).json);
  }
  client.close().waitForFinished();
  return kExitOk;
}

}  // namespace

int main(int argc, char* argv[]) {
  copycat::useFastEventLoop();
  QCoreApplication app(argc, argv);
  QCoreApplication::setApplicationName(QStringLiteral("copycat"));

  QCommandLineParser parser;
  parser.setApplicationDescription(QStringLiteral(
      "Client of a Copycat cluster running the example key-value state machine.\n"
      "Commands: put KEY VALUE | get KEY [--consistency C] [--connect-to S] |\n"
      "          remove KEY | cas KEY EXPECTED NEW | status | members |\n"
      "          join HOST:PORT | leave HOST:PORT | promote HOST:PORT |\n"
      "          demote HOST:PORT | shell (one command per line on stdin)\n"
      "Exit status: 0 ok, 1 operation failed, 2 usage error, 3 cluster unreachable."));
  const QCommandLineOption helpOption(QStringList{QStringLiteral("h"), QStringLiteral("help")},
                                      QStringLiteral("Show this help."));
  const QCommandLineOption clusterOption(QStringLiteral("cluster"),
                                         QStringLiteral("Comma-separated server addresses."),
                                         QStringLiteral("HOST:PORT[,HOST:PORT...]"));
  const QCommandLineOption timeoutOption(QStringLiteral("timeout-ms"),
                                         QStringLiteral("Time limit per operation (default 5000)."),
                                         QStringLiteral("N"), QStringLiteral("5000"));
  const QCommandLineOption clusterIdOption(QStringLiteral("cluster-id"),
                                           QStringLiteral("The cluster id (default empty)."),
                                           QStringLiteral("ID"));
  const QCommandLineOption consistencyOption(
      QStringLiteral("consistency"), QStringLiteral("get: linearizable, lease or sequential."),
      QStringLiteral("C"));
  const QCommandLineOption connectToOption(
      QStringLiteral("connect-to"),
      QStringLiteral("get and shell: the server that answers sequential gets: leader, any "
                     "(default: the open connection, the leader's when there is one) or "
                     "followers (a follower when one is reachable, else the leader)."),
      QStringLiteral("S"));
  parser.addOption(helpOption);
  parser.addOption(clusterOption);
  parser.addOption(timeoutOption);
  parser.addOption(clusterIdOption);
  parser.addOption(consistencyOption);
  parser.addOption(connectToOption);
  parser.addPositionalArgument(QStringLiteral("command"),
                               QStringLiteral("put, get, remove, cas, status, members, join, "
                                              "leave or shell."));
  parser.addPositionalArgument(QStringLiteral("args"), QStringLiteral("The command's arguments."),
                               QStringLiteral("[args...]"));

  if (!parser.parse(QCoreApplication::arguments())) {
    printError(parser.errorText());
    return kExitUsage;
  }
  if (parser.isSet(helpOption)) {
    writeLine(stdout, parser.helpText().toUtf8());
    return kExitOk;
  }
  const QStringList positional = parser.positionalArguments();
  if (positional.isEmpty()) {
    printError(QStringLiteral("missing command (see --help)"));
    return kExitUsage;
  }
  const bool shell = positional.front() == QLatin1String("shell");
  Request request;
  if (shell) {
    if (positional.size() > 1) {
      printError(QStringLiteral("extra arguments for 'shell'"));
      return kExitUsage;
    }
    if (parser.isSet(consistencyOption)) {
      printError(QStringLiteral("--consistency applies to get only"));
      return kExitUsage;
    }
  } else {
    std::variant<Request, QString> parsed = parseRequest(
        positional, parser.isSet(consistencyOption) ? parser.value(consistencyOption) : QString());
    if (const QString* error = std::get_if<QString>(&parsed)) {
      printError(*error);
      return kExitUsage;
    }
    request = std::get<Request>(std::move(parsed));
  }
  ServerSelection selection = ServerSelection::Any;
  QString connectTo;
  if (parser.isSet(connectToOption)) {
    connectTo = parser.value(connectToOption);
    const std::variant<ServerSelection, QString> parsed = parseConnectTo(connectTo);
    if (const QString* error = std::get_if<QString>(&parsed)) {
      printError(*error);
      return kExitUsage;
    }
    if (!shell && request.op != QLatin1String("get")) {
      printError(QStringLiteral("--connect-to applies to get and shell only"));
      return kExitUsage;
    }
    selection = std::get<ServerSelection>(parsed);
    request.connectTo = connectTo;
  }
  if (!parser.isSet(clusterOption)) {
    printError(QStringLiteral("missing --cluster HOST:PORT[,HOST:PORT...]"));
    return kExitUsage;
  }
  QStringList members;
  for (const QString& part : parser.value(clusterOption).split(QLatin1Char(','))) {
    const QString member = part.trimmed();
    if (!copycat::client::isValidAddress(member)) {
      printError(
          QStringLiteral("invalid address '%1' in --cluster (expected HOST:PORT)").arg(part));
      return kExitUsage;
    }
    members.append(member);
  }
  bool timeoutOk = false;
  const qlonglong timeoutMs = parser.value(timeoutOption).toLongLong(&timeoutOk);
  if (!timeoutOk || timeoutMs <= 0 || timeoutMs > 24LL * 3600 * 1000) {
    printError(QStringLiteral("bad --timeout-ms '%1' (a positive number of milliseconds)")
                   .arg(parser.value(timeoutOption)));
    return kExitUsage;
  }

  std::unique_ptr<Client> client;
  try {
    client = Client::builder(members)
                 .withTimeout(std::chrono::milliseconds(timeoutMs))
                 .withServerSelection(selection)
                 .withClusterId(parser.value(clusterIdOption).toStdString())
                 .withConnectionStrategy(copycat::client::ConnectionStrategy::exponentialBackoff(
                     std::chrono::milliseconds(50), std::chrono::milliseconds(500)))
                 .withRegistration(copycat::kv::registerKvOperations)
                 .withName(QStringLiteral("copycat-cli"))
                 .build();
  } catch (const std::invalid_argument& error) {
    printError(QString::fromUtf8(error.what()));
    return kExitUsage;
  }

  if (shell) return runShell(*client, connectTo);

  const Response response = run(*client, request, false);
  printJson(response.json);
  if (response.exitCode != kExitOk) printError(response.error);
  if (client->session() != 0) client->close().waitForFinished();
  return response.exitCode;
}
