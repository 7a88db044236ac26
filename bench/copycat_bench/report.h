#pragma once

#include <cstdio>
#include <vector>

#include <QFile>
#include <QJsonObject>
#include <QString>
#include <QStringList>

#include "bench/copycat_bench/options.h"
#include "bench/copycat_bench/physical.h"
#include "bench/copycat_bench/stats.h"

namespace copycat::bench {

/// A human-readable table on stdout: a title, columns right-aligned.
class Table {
 public:
  explicit Table(QString title, QStringList headers)
      : m_title(std::move(title)), m_headers(std::move(headers)) {}
  void addRow(QStringList cells) { m_rows.push_back(std::move(cells)); }
  void addNote(QString note) { m_notes << std::move(note); }
  void print() const;

 private:
  QString m_title;
  QStringList m_headers;
  std::vector<QStringList> m_rows;
  QStringList m_notes;
};

/// "1,234" style integers and fixed decimals for the tables.
QString grouped(double value);
QString fixed(double value, int decimals);

/// Collects the results: one JSON object per scenario point, appended as
/// one line each to --json (JSON Lines), kept for the charts.
class Reporter {
 public:
  explicit Reporter(const Options& options) : m_options(options) {}
  /// Opens --json (truncating it) when given.
  bool open(QString* error);
  void setPhysical(const PhysicalFigures& physical) { m_physical = physical; }
  const PhysicalFigures& physical() const { return m_physical; }
  /// Adds the common fields (machine load, physical figures, settings) and writes it.
  void add(QJsonObject result);
  const std::vector<QJsonObject>& results() const { return m_results; }

 private:
  const Options& m_options;
  PhysicalFigures m_physical;
  QFile m_json;
  std::vector<QJsonObject> m_results;
};

QJsonObject latencyJson(const LatencySummary& latency);
QJsonObject physicalJson(const PhysicalFigures& physical);
/// The 1, 5 and 15 minute load averages ("uptime").
QString loadAverage();

/// The \r-updated progress line on stderr (a new line each second when
/// stderr is not a terminal).
class Progress {
 public:
  explicit Progress(QString label) : m_label(std::move(label)) {}
  ~Progress() { done(); }
  /// Prints at most once a second unless `force`; `totalSeconds` 0: open-ended.
  void update(double elapsedSeconds, double totalSeconds, const QString& detail,
              bool force = false);
  void done();

 private:
  QString m_label;
  std::int64_t m_lastNs = 0;
  bool m_printed = false;
};

}  // namespace copycat::bench
