#include "bench/copycat_bench/charts.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include <QDir>
#include <QFile>
#include <QFont>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonParseError>
#include <QPen>

#include <qcustomplot.h>

namespace copycat::bench {

namespace {

constexpr int kWidth = 1000;
constexpr int kHeight = 620;

const QList<QColor> kColors = {QColor(31, 119, 180), QColor(255, 127, 14),  QColor(44, 160, 44),
                               QColor(214, 39, 40),  QColor(148, 103, 189), QColor(140, 86, 75)};

/// A plot with a title, readable fonts and a legend.
void setUp(QCustomPlot& plot, const QString& title, const QString& xLabel, const QString& yLabel) {
  plot.resize(kWidth, kHeight);
  plot.setBackground(Qt::white);
  plot.plotLayout()->insertRow(0);
  auto* titleElement =
      new QCPTextElement(&plot, title, QFont(QStringLiteral("sans"), 15, QFont::Bold));
  plot.plotLayout()->addElement(0, 0, titleElement);
  const QFont labelFont(QStringLiteral("sans"), 12);
  const QFont tickFont(QStringLiteral("sans"), 11);
  plot.xAxis->setLabel(xLabel);
  plot.yAxis->setLabel(yLabel);
  plot.xAxis->setLabelFont(labelFont);
  plot.yAxis->setLabelFont(labelFont);
  plot.xAxis->setTickLabelFont(tickFont);
  plot.yAxis->setTickLabelFont(tickFont);
  plot.legend->setVisible(true);
  plot.legend->setFont(QFont(QStringLiteral("sans"), 11));
  plot.legend->setBrush(QColor(255, 255, 255, 230));
}

/// Moves the legend out of the axis rect into a row of its own below it
/// (under the x axis label), `columns` entries side by side, so that it never
/// covers data wherever the points fall. Call after every row was added.
void legendBelow(QCustomPlot& plot, int columns) {
  QCPLayoutGrid* layout = plot.plotLayout();
  const int row = layout->rowCount();
  // A row of three cells, the legend in the middle one at its own width:
  // centred under the axis rect.
  auto* strip = new QCPLayoutGrid;
  layout->addElement(row, 0, strip);
  layout->setRowStretchFactor(row, 0.001);  // only the height it needs
  strip->addElement(0, 1, plot.legend);     // takes it out of the inset layout
  strip->expandTo(1, 3);
  strip->setColumnStretchFactors({1, 0.001, 1});
  plot.legend->setWrap(std::max(columns, 1));  // before the fill order, which rearranges
  plot.legend->setFillOrder(QCPLegend::foColumnsFirst);
  plot.legend->setColumnSpacing(24);
  plot.legend->setBorderPen(Qt::NoPen);
  plot.legend->setMargins(QMargins(10, 2, 10, 6));
}

QCPGraph* addLine(QCustomPlot& plot, const QString& name, const QVector<double>& x,
                  const QVector<double>& y, int colorIndex) {
  QCPGraph* graph = plot.addGraph();
  graph->setName(name);
  graph->setData(x, y);
  const QColor color = kColors[colorIndex % kColors.size()];
  graph->setPen(QPen(color, 2.5));
  graph->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, color, Qt::white, 9));
  return graph;
}

/// Log-scale x axis for client counts (1, 16, 64, 100...).
void clientsAxis(QCustomPlot& plot, const QVector<double>& clients) {
  plot.xAxis->setScaleType(QCPAxis::stLogarithmic);
  QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
  for (double c : clients) ticker->addTick(c, QString::number(c));
  plot.xAxis->setTicker(ticker);
  const double low = *std::min_element(clients.begin(), clients.end());
  const double high = *std::max_element(clients.begin(), clients.end());
  plot.xAxis->setRange(low / 1.4, high * 1.4);
}

/// Labelled ticks at 1, 2 and 5 times the powers of ten within [low, high].
QSharedPointer<QCPAxisTickerText> logTicks(double low, double high) {
  QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
  for (double decade = 1e-3; decade <= 1e6; decade *= 10) {
    for (double step : {1.0, 2.0, 5.0}) {
      const double value = decade * step;
      if (value >= low && value <= high) ticker->addTick(value, QString::number(value, 'g', 6));
    }
  }
  return ticker;
}

bool save(QCustomPlot& plot, const QString& path, QStringList* written, QStringList* errors) {
  if (!plot.savePng(path, kWidth, kHeight)) {
    *errors << QStringLiteral("cannot write %1").arg(path);
    return false;
  }
  *written << path;
  return true;
}

/// A value as a file-name word: letters, digits, '.' and '-' are kept, any
/// other character becomes '-'.
QString fileWord(const QString& text) {
  QString word;
  for (const QChar c : text) {
    word += c.isLetterOrNumber() || c == QLatin1Char('.') || c == QLatin1Char('-')
                ? c.toLower()
                : QLatin1Char('-');
  }
  return word;
}

/// What tells the runs of the results drawn in one chart apart, as a suffix
/// of the chart's file name: "_LAUNCHER_STORAGE" ("_processes_disk",
/// "_in-process_memory"), then "_Nnodes" when not 3 (the default) and
/// "_rateR" for open-loop load. Values that differ among the results are
/// joined with '+'. The same run always gives the same names, and charts of
/// runs with another launcher or storage in the same directory do not
/// overwrite each other.
QString chartSuffix(const std::vector<QJsonObject>& results) {
  std::set<QString> launchers, storages, nodes, rates;
  for (const QJsonObject& r : results) {
    launchers.insert(fileWord(r.value(QStringLiteral("launcher")).toString()));
    storages.insert(fileWord(r.value(QStringLiteral("storage")).toString()));
    const int n = r.value(QStringLiteral("nodes")).toInt();
    if (n > 0 && n != 3) nodes.insert(QStringLiteral("%1nodes").arg(n));
    const double rate = r.value(QStringLiteral("rate")).toDouble();
    if (rate > 0) rates.insert(QStringLiteral("rate") + QString::number(rate, 'g', 12));
  }
  const auto join = [](const std::set<QString>& words) {
    QStringList list;
    for (const QString& word : words) {
      if (!word.isEmpty()) list << word;
    }
    return list.join(QLatin1Char('+'));
  };
  QString suffix;
  for (const std::set<QString>* part : {&launchers, &storages, &nodes, &rates}) {
    const QString words = join(*part);
    if (!words.isEmpty()) suffix += QLatin1Char('_') + words;
  }
  return suffix;
}

/// `stem` + chartSuffix(results) + ".png".
QString chartFile(const QString& stem, const std::vector<QJsonObject>& results) {
  return stem + chartSuffix(results) + QStringLiteral(".png");
}

QString seriesKey(const QJsonObject& r) {
  if (r.value(QStringLiteral("launcher")).toString() == QLatin1String("etcd")) {
    return QStringLiteral("etcd %1, %2 members")
        .arg(r.value(QStringLiteral("version")).toString())
        .arg(r.value(QStringLiteral("nodes")).toInt());
  }
  QString key = QStringLiteral("Copycat, %1, %2 storage, %3 nodes")
                    .arg(r.value(QStringLiteral("launcher")).toString(),
                         r.value(QStringLiteral("storage")).toString())
                    .arg(r.value(QStringLiteral("nodes")).toInt());
  if (r.value(QStringLiteral("rate")).toDouble() > 0)
    key += QStringLiteral(", open loop %1 ops/s").arg(r.value(QStringLiteral("rate")).toDouble());
  return key;
}

/// A line of scripts/bench-etcd.sh as a throughput result (a put) or null.
std::optional<QJsonObject> etcdThroughput(const QJsonObject& line) {
  if (line.value(QStringLiteral("op")).toString() != QLatin1String("put")) return std::nullopt;
  QJsonObject result;
  result.insert(QStringLiteral("scenario"), QStringLiteral("throughput"));
  result.insert(QStringLiteral("launcher"), QStringLiteral("etcd"));
  result.insert(QStringLiteral("storage"), QStringLiteral("disk"));
  result.insert(QStringLiteral("nodes"), line.value(QStringLiteral("cluster_size")).toInt());
  for (const char* field : {"version", "clients", "value_bytes", "ops_per_s", "latency_ms"})
    result.insert(QLatin1String(field), line.value(QLatin1String(field)));
  return result;
}

}  // namespace

std::vector<QJsonObject> readResultFiles(const QStringList& files, QStringList* errors) {
  std::vector<QJsonObject> results;
  for (const QString& name : files) {
    QFile file(name);
    if (!file.open(QIODevice::ReadOnly)) {
      *errors << QStringLiteral("cannot read %1: %2").arg(name, file.errorString());
      continue;
    }
    int number = 0;
    while (!file.atEnd()) {
      const QByteArray line = file.readLine().trimmed();
      ++number;
      if (line.isEmpty()) continue;
      QJsonParseError parseError;
      const QJsonDocument document = QJsonDocument::fromJson(line, &parseError);
      if (!document.isObject()) {
        *errors << QStringLiteral("%1:%2: not a JSON object (%3)")
                       .arg(name)
                       .arg(number)
                       .arg(parseError.error == QJsonParseError::NoError
                                ? QStringLiteral("another JSON value")
                                : parseError.errorString());
        continue;
      }
      const QJsonObject object = document.object();
      if (object.value(QStringLiteral("system")).toString() == QLatin1String("etcd")) {
        if (std::optional<QJsonObject> put = etcdThroughput(object)) results.push_back(*put);
      } else {
        results.push_back(object);
      }
    }
  }
  return results;
}

QStringList writeCharts(const std::vector<QJsonObject>& results, const QString& directory,
                        QStringList* errors) {
  QStringList written;
  if (!QDir().mkpath(directory)) {
    *errors << QStringLiteral("cannot create %1").arg(directory);
    return written;
  }
  QDir dir(directory);

  // Throughput series, one per launcher/storage/nodes combination.
  std::map<QString, std::vector<QJsonObject>> series;
  std::vector<QJsonObject> throughput;
  for (const QJsonObject& r : results) {
    if (r.value(QStringLiteral("scenario")).toString() == QLatin1String("throughput")) {
      series[seriesKey(r)].push_back(r);
      throughput.push_back(r);
    }
  }
  if (!series.empty()) {
    QCustomPlot plot;
    setUp(plot,
          QStringLiteral("Write throughput vs clients (%1 B values)")
              .arg(series.begin()->second.front().value(QStringLiteral("value_bytes")).toInt()),
          QStringLiteral("closed-loop clients (sessions), log scale"),
          QStringLiteral("acknowledged operations per second"));
    QVector<double> allClients;
    double top = 0;
    int color = 0;
    for (const auto& [name, points] : series) {
      QVector<double> x, y;
      for (const QJsonObject& p : points) {
        x << p.value(QStringLiteral("clients")).toDouble();
        y << p.value(QStringLiteral("ops_per_s")).toDouble();
        top = std::max(top, y.back());
      }
      allClients << x;
      addLine(plot, name, x, y, color++);
    }
    clientsAxis(plot, allClients);
    plot.yAxis->setRange(0, top * 1.15 + 1);
    legendBelow(plot, series.size() > 2 ? 2 : static_cast<int>(series.size()));
    save(plot, dir.filePath(chartFile(QStringLiteral("throughput_vs_clients"), throughput)),
         &written, errors);

    if (series.size() > 1) {
      // The series side by side: p99 solid, p50 dashed, one colour each.
      QCustomPlot both;
      setUp(both, QStringLiteral("Write latency vs clients: p50 and p99"),
            QStringLiteral("closed-loop clients (sessions), log scale"),
            QStringLiteral("latency (ms), log scale"));
      both.yAxis->setScaleType(QCPAxis::stLogarithmic);
      double low = 1e9, high = 0;
      int seriesColor = 0;
      for (const auto& [name, points] : series) {
        for (const char* percentile : {"p50", "p99"}) {
          QVector<double> x, y;
          for (const QJsonObject& p : points) {
            x << p.value(QStringLiteral("clients")).toDouble();
            y << std::max(p.value(QStringLiteral("latency_ms"))
                              .toObject()
                              .value(QLatin1String(percentile))
                              .toDouble(),
                          1e-3);
            low = std::min(low, y.back());
            high = std::max(high, y.back());
          }
          QCPGraph* graph =
              addLine(both, QStringLiteral("%1: %2").arg(name, QLatin1String(percentile)), x, y,
                      seriesColor);
          if (QLatin1String(percentile) == QLatin1String("p50")) {
            QPen pen = graph->pen();
            pen.setStyle(Qt::DashLine);
            graph->setPen(pen);
          }
        }
        ++seriesColor;
      }
      clientsAxis(both, allClients);
      both.yAxis->setRange(low / 1.5, high * 1.5);
      both.yAxis->setTicker(logTicks(low / 1.5, high * 1.5));
      legendBelow(both, 2);
      save(both, dir.filePath(chartFile(QStringLiteral("latency_p50_p99_vs_clients"), throughput)),
           &written, errors);
    }

    for (const auto& [name, points] : series) {
      QCustomPlot latency;
      setUp(latency, QStringLiteral("Write latency percentiles vs clients"),
            QStringLiteral("closed-loop clients (sessions), log scale"),
            QStringLiteral("latency (ms), log scale"));
      latency.yAxis->setScaleType(QCPAxis::stLogarithmic);
      const QStringList keys = {QStringLiteral("p50"), QStringLiteral("p90"), QStringLiteral("p99"),
                                QStringLiteral("p999"), QStringLiteral("max")};
      const QStringList labels = {QStringLiteral("p50"), QStringLiteral("p90"),
                                  QStringLiteral("p99"), QStringLiteral("p99.9"),
                                  QStringLiteral("max")};
      double low = 1e9, high = 0;
      QVector<double> x;
      for (const QJsonObject& p : points) x << p.value(QStringLiteral("clients")).toDouble();
      for (int k = 0; k < keys.size(); ++k) {
        QVector<double> y;
        for (const QJsonObject& p : points) {
          const double v =
              p.value(QStringLiteral("latency_ms")).toObject().value(keys[k]).toDouble();
          y << std::max(v, 1e-3);
          low = std::min(low, y.back());
          high = std::max(high, y.back());
        }
        addLine(latency, labels[k], x, y, k);
      }
      clientsAxis(latency, x);
      latency.yAxis->setRange(low / 1.5, high * 1.5);
      latency.yAxis->setTicker(logTicks(low / 1.5, high * 1.5));
      auto* subtitle = new QCPTextElement(&latency, name, QFont(QStringLiteral("sans"), 11));
      latency.plotLayout()->insertRow(1);
      latency.plotLayout()->addElement(1, 0, subtitle);
      legendBelow(latency, static_cast<int>(keys.size()));
      save(latency, dir.filePath(chartFile(QStringLiteral("latency_vs_clients"), points)), &written,
           errors);
    }
  }

  // Reads by consistency level.
  std::vector<QJsonObject> reads;
  for (const QJsonObject& r : results) {
    if (r.value(QStringLiteral("scenario")).toString() == QLatin1String("reads"))
      reads.push_back(r);
  }
  if (!reads.empty()) {
    QCustomPlot plot;
    setUp(plot,
          QStringLiteral("Reads per second by consistency level (%1 clients)")
              .arg(reads.front().value(QStringLiteral("clients")).toInt()),
          QStringLiteral("consistency level"), QStringLiteral("reads per second"));
    auto* bars = new QCPBars(plot.xAxis, plot.yAxis);
    bars->setName(QStringLiteral("reads/s"));
    bars->setBrush(kColors[0]);
    bars->setPen(QPen(kColors[0].darker(130)));
    bars->setWidth(0.6);
    QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
    QVector<double> x, y;
    double top = 0;
    for (std::size_t i = 0; i < reads.size(); ++i) {
      x << static_cast<double>(i + 1);
      y << reads[i].value(QStringLiteral("ops_per_s")).toDouble();
      top = std::max(top, y.back());
      const QJsonObject lat = reads[i].value(QStringLiteral("latency_ms")).toObject();
      ticker->addTick(x.back(), QStringLiteral("%1\np50 %2 ms, p99 %3 ms")
                                    .arg(reads[i].value(QStringLiteral("consistency")).toString())
                                    .arg(lat.value(QStringLiteral("p50")).toDouble(), 0, 'f', 2)
                                    .arg(lat.value(QStringLiteral("p99")).toDouble(), 0, 'f', 2));
    }
    bars->setData(x, y);
    plot.xAxis->setTicker(ticker);
    plot.xAxis->setRange(0.4, static_cast<double>(reads.size()) + 0.6);
    plot.yAxis->setRange(0, top * 1.15 + 1);
    plot.legend->setVisible(false);
    save(plot, dir.filePath(chartFile(QStringLiteral("reads_by_consistency"), reads)), &written,
         errors);
  }

  // Failover: time to the first acknowledged write after each kill.
  for (const QJsonObject& r : results) {
    if (r.value(QStringLiteral("scenario")).toString() != QLatin1String("failover")) continue;
    const QJsonArray kills = r.value(QStringLiteral("kills_ms")).toArray();
    if (kills.isEmpty()) continue;
    QCustomPlot plot;
    setUp(plot, QStringLiteral("Failover: leader kill to first acknowledged write"),
          QStringLiteral("kill number"), QStringLiteral("time (ms)"));
    auto* bars = new QCPBars(plot.xAxis, plot.yAxis);
    bars->setName(QStringLiteral("first acknowledged write (%1)")
                      .arg(r.value(QStringLiteral("kill_method")).toString()));
    bars->setBrush(kColors[3]);
    bars->setPen(QPen(kColors[3].darker(130)));
    bars->setWidth(0.6);
    QVector<double> x, y;
    double top = 0;
    for (qsizetype i = 0; i < kills.size(); ++i) {
      x << static_cast<double>(i + 1);
      y << kills[i].toDouble();
      top = std::max(top, y.back());
    }
    bars->setData(x, y);
    const QJsonArray seen = r.value(QStringLiteral("new_leader_seen_ms")).toArray();
    QVector<double> seenX, seenY;
    for (qsizetype i = 0; i < seen.size(); ++i) {
      if (!seen[i].isDouble()) continue;
      seenX << static_cast<double>(i + 1);
      seenY << seen[i].toDouble();
      top = std::max(top, seenY.back());
    }
    if (!seenX.isEmpty()) {
      QCPGraph* graph = plot.addGraph();
      graph->setName(QStringLiteral("a survivor reports itself leader (status polling)"));
      graph->setData(seenX, seenY);
      graph->setLineStyle(QCPGraph::lsNone);
      graph->setScatterStyle(
          QCPScatterStyle(QCPScatterStyle::ssDiamond, QPen(Qt::black, 2), QColor(255, 215, 0), 14));
    }
    QSharedPointer<QCPAxisTickerFixed> ticker(new QCPAxisTickerFixed);
    ticker->setTickStep(1);
    plot.xAxis->setTicker(ticker);
    plot.xAxis->setRange(0.4, static_cast<double>(kills.size()) + 0.6);
    plot.yAxis->setRange(0, top * 1.2 + 1);
    legendBelow(plot, 1);  // long entries: one per line
    save(plot, dir.filePath(chartFile(QStringLiteral("failover"), {r})), &written, errors);
    break;
  }
  return written;
}

}  // namespace copycat::bench
