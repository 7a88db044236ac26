#include "bench/copycat_bench/charts.h"

#include <algorithm>
#include <map>

#include <QDir>
#include <QFont>
#include <QJsonArray>
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

QString seriesKey(const QJsonObject& r) {
  QString key = QStringLiteral("%1, %2 storage, %3 nodes")
                    .arg(r.value(QStringLiteral("launcher")).toString(),
                         r.value(QStringLiteral("storage")).toString())
                    .arg(r.value(QStringLiteral("nodes")).toInt());
  if (r.value(QStringLiteral("rate")).toDouble() > 0)
    key += QStringLiteral(", open loop %1 ops/s").arg(r.value(QStringLiteral("rate")).toDouble());
  return key;
}

}  // namespace

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
  for (const QJsonObject& r : results) {
    if (r.value(QStringLiteral("scenario")).toString() == QLatin1String("throughput"))
      series[seriesKey(r)].push_back(r);
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
    plot.axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignLeft | Qt::AlignTop);
    save(plot, dir.filePath(QStringLiteral("throughput_vs_clients.png")), &written, errors);

    int index = 0;
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
      latency.axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignLeft | Qt::AlignTop);
      auto* subtitle = new QCPTextElement(&latency, name, QFont(QStringLiteral("sans"), 11));
      latency.plotLayout()->insertRow(1);
      latency.plotLayout()->addElement(1, 0, subtitle);
      const QString file = series.size() == 1
                               ? QStringLiteral("latency_vs_clients.png")
                               : QStringLiteral("latency_vs_clients_%1.png").arg(++index);
      save(latency, dir.filePath(file), &written, errors);
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
    save(plot, dir.filePath(QStringLiteral("reads_by_consistency.png")), &written, errors);
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
    save(plot, dir.filePath(QStringLiteral("failover.png")), &written, errors);
    break;
  }
  return written;
}

}  // namespace copycat::bench
