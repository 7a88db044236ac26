#pragma once

#include <vector>

#include <QJsonObject>
#include <QString>
#include <QStringList>

namespace copycat::bench {

/// Writes PNG charts of the results into `directory` (QCustomPlot, rendered
/// offscreen): throughput vs clients and latency percentiles vs clients (log
/// y) for each throughput series, reads by consistency level, failover times.
/// Each file name ends with what its results were run on, so that runs with
/// another launcher or storage can share `directory`:
/// throughput_vs_clients_LAUNCHER_STORAGE.png (all series),
/// latency_vs_clients_LAUNCHER_STORAGE.png (one per series),
/// latency_p50_p99_vs_clients_LAUNCHER_STORAGE.png (every series' p50 and
/// p99, when there are several),
/// reads_by_consistency_LAUNCHER_STORAGE.png, failover_LAUNCHER_STORAGE.png;
/// e.g. latency_vs_clients_processes_disk.png. "_Nnodes" follows STORAGE
/// when not 3 nodes, "_rateR" for open-loop load.
/// Returns the files written; errors go to `errors`.
QStringList writeCharts(const std::vector<QJsonObject>& results, const QString& directory,
                        QStringList* errors);

/// The results saved in JSON lines files, for writeCharts(): copycat-bench's
/// own (--json) as they are, and scripts/bench-etcd.sh's puts as throughput
/// results of launcher "etcd" (its reads are left out). Every line that is
/// not a JSON object is an error naming the file and line; unreadable files
/// too.
std::vector<QJsonObject> readResultFiles(const QStringList& files, QStringList* errors);

}  // namespace copycat::bench
