#pragma once

#include <vector>

#include <QJsonObject>
#include <QString>
#include <QStringList>

namespace copycat::bench {

/// Writes PNG charts of the results into `directory` (QCustomPlot, rendered
/// offscreen): throughput vs clients and latency percentiles vs clients (log
/// y) for each throughput series, reads by consistency level, failover times.
/// Returns the files written; errors go to `errors`.
QStringList writeCharts(const std::vector<QJsonObject>& results, const QString& directory,
                        QStringList* errors);

}  // namespace copycat::bench
