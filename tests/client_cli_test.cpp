// The `copycat` command line: usage errors exit 2 with text on stderr, an
// unreachable cluster exits 3 once the timeout passed. The binary is run as a
// separate process.

#include <QProcess>
#include <QTcpServer>
#include <QTest>

namespace {

struct Run {
  int exitCode = -1;
  QByteArray out;
  QByteArray err;
};

Run runCli(const QStringList& arguments, const QByteArray& input = {}) {
  QProcess process;
  process.start(QStringLiteral(COPYCAT_CLI_PATH), arguments);
  if (!process.waitForStarted(30000)) return {};
  if (!input.isEmpty()) process.write(input);
  process.closeWriteChannel();
  if (!process.waitForFinished(60000)) {
    process.kill();
    process.waitForFinished();
    return {};
  }
  Run run;
  run.exitCode = process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1;
  run.out = process.readAllStandardOutput();
  run.err = process.readAllStandardError();
  return run;
}

/// An address where nothing listens.
QString closedAddress() {
  QTcpServer probe;
  if (!probe.listen(QHostAddress::LocalHost, 0)) return {};
  const QString address = QStringLiteral("127.0.0.1:%1").arg(probe.serverPort());
  probe.close();
  return address;
}

}  // namespace

class ClientCliTest : public QObject {
  Q_OBJECT

 private slots:
  void usageErrorsExitTwo_data() {
    QTest::addColumn<QStringList>("arguments");
    const QString cluster = QStringLiteral("--cluster=127.0.0.1:5001");
    QTest::newRow("no arguments") << QStringList{};
    QTest::newRow("no command") << QStringList{cluster};
    QTest::newRow("unknown command") << QStringList{cluster, QStringLiteral("frobnicate")};
    QTest::newRow("put without value")
        << QStringList{cluster, QStringLiteral("put"), QStringLiteral("k")};
    QTest::newRow("get with extra arguments")
        << QStringList{cluster, QStringLiteral("get"), QStringLiteral("k"),
                       QStringLiteral("sequential"), QStringLiteral("more")};
    QTest::newRow("cas without new value")
        << QStringList{cluster, QStringLiteral("cas"), QStringLiteral("k"), QStringLiteral("a")};
    QTest::newRow("invalid address") << QStringList{QStringLiteral("--cluster=nowhere"),
                                                    QStringLiteral("get"), QStringLiteral("k")};
    QTest::newRow("invalid port") << QStringList{QStringLiteral("--cluster=127.0.0.1:99999"),
                                                 QStringLiteral("get"), QStringLiteral("k")};
    QTest::newRow("missing cluster") << QStringList{QStringLiteral("get"), QStringLiteral("k")};
    QTest::newRow("bad timeout") << QStringList{cluster, QStringLiteral("--timeout-ms"),
                                                QStringLiteral("abc"), QStringLiteral("get"),
                                                QStringLiteral("k")};
    QTest::newRow("negative timeout") << QStringList{cluster, QStringLiteral("--timeout-ms=-5"),
                                                     QStringLiteral("get"), QStringLiteral("k")};
    QTest::newRow("bad consistency option")
        << QStringList{cluster, QStringLiteral("get"), QStringLiteral("k"),
                       QStringLiteral("--consistency"), QStringLiteral("eventual")};
    QTest::newRow("bad consistency word") << QStringList{
        cluster, QStringLiteral("get"), QStringLiteral("k"), QStringLiteral("eventual")};
    QTest::newRow("join invalid address")
        << QStringList{cluster, QStringLiteral("join"), QStringLiteral("host")};
    QTest::newRow("unknown option")
        << QStringList{cluster, QStringLiteral("--frob"), QStringLiteral("status")};
  }

  void usageErrorsExitTwo() {
    QFETCH(QStringList, arguments);
    const Run run = runCli(arguments);
    QCOMPARE(run.exitCode, 2);
    QVERIFY2(!run.err.trimmed().isEmpty(), "no error text on stderr");
    QVERIFY(run.out.isEmpty());
  }

  void helpExitsZero() {
    const Run run = runCli({QStringLiteral("--help")});
    QCOMPARE(run.exitCode, 0);
    QVERIFY(run.out.contains("shell"));
  }

  void unreachableClusterExitsThree_data() {
    QTest::addColumn<QStringList>("command");
    QTest::newRow("get") << QStringList{QStringLiteral("get"), QStringLiteral("k")};
    QTest::newRow("put") << QStringList{QStringLiteral("put"), QStringLiteral("k"),
                                        QStringLiteral("v")};
    QTest::newRow("status") << QStringList{QStringLiteral("status")};
    QTest::newRow("shell") << QStringList{QStringLiteral("shell")};
  }

  void unreachableClusterExitsThree() {
    QFETCH(QStringList, command);
    const QString address = closedAddress();
    QVERIFY(!address.isEmpty());
    const Run run = runCli(QStringList{QStringLiteral("--cluster"), address,
                                       QStringLiteral("--timeout-ms"), QStringLiteral("300")} +
                               command,
                           "get k\n");
    QCOMPARE(run.exitCode, 3);
    QVERIFY(!run.err.trimmed().isEmpty());
  }
};

QTEST_GUILESS_MAIN(ClientCliTest)
#include "client_cli_test.moc"
