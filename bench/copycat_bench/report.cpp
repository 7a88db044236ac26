#include "bench/copycat_bench/report.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include <QDateTime>
#include <QDir>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QLocale>

namespace copycat::bench {

void Table::print() const {
  std::vector<qsizetype> widths;
  for (const QString& header : m_headers) widths.push_back(header.size());
  for (const QStringList& row : m_rows) {
    for (qsizetype i = 0; i < row.size() && i < static_cast<qsizetype>(widths.size()); ++i)
      widths[static_cast<std::size_t>(i)] =
          std::max(widths[static_cast<std::size_t>(i)], row[i].size());
  }
  QString out = QStringLiteral("\n== %1 ==\n").arg(m_title);
  const auto line = [&](const QStringList& cells) {
    QString text;
    for (qsizetype i = 0; i < cells.size(); ++i) {
      const int width = static_cast<int>(widths[static_cast<std::size_t>(i)]);
      text += (i == 0 ? cells[i].leftJustified(width) : cells[i].rightJustified(width));
      if (i + 1 < cells.size()) text += QStringLiteral("  ");
    }
    return text + QLatin1Char('\n');
  };
  out += line(m_headers);
  QStringList rules;
  for (qsizetype width : widths) rules << QString(width, QLatin1Char('-'));
  out += line(rules);
  for (const QStringList& row : m_rows) out += line(row);
  for (const QString& note : m_notes) out += QStringLiteral("  * %1\n").arg(note);
  std::fputs(out.toUtf8().constData(), stdout);
  std::fflush(stdout);
}

QString grouped(double value) {
  if (!std::isfinite(value)) return QStringLiteral("n/a");
  return QLocale(QLocale::English).toString(static_cast<qlonglong>(std::llround(value)));
}

QString fixed(double value, int decimals) {
  if (!std::isfinite(value)) return QStringLiteral("n/a");
  return QString::number(value, 'f', decimals);
}

bool Reporter::open(QString* error) {
  if (m_options.json.isEmpty()) return true;
  QDir().mkpath(QFileInfo(m_options.json).absolutePath());
  m_json.setFileName(m_options.json);
  if (!m_json.open(QIODevice::WriteOnly | QIODevice::Truncate | QIODevice::Text)) {
    *error = QStringLiteral("cannot write %1: %2").arg(m_options.json, m_json.errorString());
    return false;
  }
  return true;
}

void Reporter::add(QJsonObject result) {
  if (!result.contains(QStringLiteral("launcher")))
    result.insert(QStringLiteral("launcher"), launcherName(m_options.launcher));
  if (!result.contains(QStringLiteral("storage")))
    result.insert(QStringLiteral("storage"),
                  m_options.disk ? QStringLiteral("disk") : QStringLiteral("memory"));
  result.insert(QStringLiteral("time"), QDateTime::currentDateTimeUtc().toString(Qt::ISODate));
  result.insert(QStringLiteral("load_average"), loadAverage());
  result.insert(QStringLiteral("cpus"), static_cast<int>(std::thread::hardware_concurrency()));
  result.insert(QStringLiteral("physical"), physicalJson(m_physical));
  if (m_json.isOpen()) {
    m_json.write(QJsonDocument(result).toJson(QJsonDocument::Compact));
    m_json.write("\n");
    m_json.flush();
  }
  m_results.push_back(std::move(result));
}

QJsonObject latencyJson(const LatencySummary& latency) {
  return {{QStringLiteral("count"), static_cast<qint64>(latency.count)},
          {QStringLiteral("mean"), latency.meanMs},
          {QStringLiteral("p50"), latency.p50Ms},
          {QStringLiteral("p90"), latency.p90Ms},
          {QStringLiteral("p99"), latency.p99Ms},
          {QStringLiteral("p999"), latency.p999Ms},
          {QStringLiteral("max"), latency.maxMs}};
}

QJsonObject physicalJson(const PhysicalFigures& physical) {
  return {{QStringLiteral("fdatasync_per_s"), physical.fdatasyncPerSec},
          {QStringLiteral("fdatasync_p50_ms"), physical.fdatasyncP50Ms},
          {QStringLiteral("quorum_sync_p50_ms"), physical.quorumSyncP50Ms},
          {QStringLiteral("pair_sync_p50_ms"), physical.pairSyncP50Ms},
          {QStringLiteral("concurrent_syncs_per_s"), physical.concurrentSyncsPerSec},
          {QStringLiteral("loopback_rtt_us"), physical.loopbackRttUs},
          {QStringLiteral("loopback_rtt_p99_us"), physical.loopbackRttP99Us},
          {QStringLiteral("loopback_mb_per_s"), physical.loopbackMBps},
          {QStringLiteral("disk_sequential_mb_per_s"), physical.diskMBps},
          {QStringLiteral("filesystem"), physical.filesystem}};
}

QString loadAverage() {
  QFile file(QStringLiteral("/proc/loadavg"));
  if (!file.open(QIODevice::ReadOnly)) return QStringLiteral("?");
  const QList<QByteArray> parts = file.readAll().split(' ');
  if (parts.size() < 3) return QStringLiteral("?");
  return QStringLiteral("%1 %2 %3")
      .arg(QString::fromLatin1(parts[0]), QString::fromLatin1(parts[1]),
           QString::fromLatin1(parts[2]));
}

void Progress::update(double elapsedSeconds, double totalSeconds, const QString& detail,
                      bool force) {
  const std::int64_t now = nowNs();
  if (!force && m_printed && now - m_lastNs < 1000000000) return;
  m_lastNs = now;
  const bool terminal = ::isatty(STDERR_FILENO) != 0;
  const QString time = totalSeconds > 0 ? QStringLiteral("%1/%2 s").arg(fixed(elapsedSeconds, 0),
                                                                        fixed(totalSeconds, 0))
                                        : QStringLiteral("%1 s").arg(fixed(elapsedSeconds, 0));
  const QString text = QStringLiteral("%1: %2  %3").arg(m_label, time, detail);
  if (terminal) {
    std::fprintf(stderr, "\r\033[K%s", text.toUtf8().constData());
  } else {
    std::fprintf(stderr, "%s\n", text.toUtf8().constData());
  }
  std::fflush(stderr);
  m_printed = true;
}

void Progress::done() {
  if (m_printed && ::isatty(STDERR_FILENO) != 0) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }
  m_printed = false;
}

}  // namespace copycat::bench
