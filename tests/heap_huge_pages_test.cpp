// The heap of the programs that run servers (app/huge_page_heap.cpp under
// TCMalloc): memory it hands out works like any other, and where the kernel
// offers transparent huge pages the heap's fresh memory gets them, which
// TCMalloc's own heap never does in the kernel's madvise mode.

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <QFile>
#include <QTest>

namespace {

/// The bracketed mode of /sys/kernel/mm/transparent_hugepage/enabled, or
/// "" when the kernel has none.
QByteArray hugePageMode() {
  QFile file(QStringLiteral("/sys/kernel/mm/transparent_hugepage/enabled"));
  if (!file.open(QIODevice::ReadOnly)) return {};
  const QByteArray text = file.readAll();
  const qsizetype open = text.indexOf('[');
  const qsizetype close = text.indexOf(']', open);
  if (open < 0 || close < 0) return {};
  return text.mid(open + 1, close - open - 1);
}

/// AnonHugePages of this process in KiB (smaps_rollup), -1 when unreadable.
long anonymousHugePagesKiB() {
  QFile file(QStringLiteral("/proc/self/smaps_rollup"));
  if (!file.open(QIODevice::ReadOnly)) return -1;
  for (const QByteArray& line : file.readAll().split('\n')) {
    if (line.startsWith("AnonHugePages:")) {
      return line.mid(14).trimmed().split(' ').value(0).toLong();
    }
  }
  return -1;
}

}  // namespace

class HeapHugePagesTest : public QObject {
  Q_OBJECT

 private slots:
  // 32 MiB of 64 KiB blocks (a snapshot's values) and one 48 MiB block keep
  // what was written to them; with transparent huge pages on request, some
  // of that memory is in huge pages.
  void freshMemoryIsUsableAndInHugePages() {
    const long before = anonymousHugePagesKiB();
    std::vector<std::unique_ptr<char[]>> blocks;
    constexpr std::size_t kBlock = 64 * 1024;
    for (int i = 0; i < 512; ++i) {
      blocks.emplace_back(new char[kBlock]);
      std::memset(blocks.back().get(), i & 0xff, kBlock);
    }
    std::string large(48u << 20, 'x');
    for (int i = 0; i < 512; ++i) {
      const char* block = blocks[static_cast<std::size_t>(i)].get();
      QCOMPARE(static_cast<unsigned char>(block[0]), static_cast<unsigned char>(i & 0xff));
      QCOMPARE(static_cast<unsigned char>(block[kBlock - 1]), static_cast<unsigned char>(i & 0xff));
    }
    QCOMPARE(large[large.size() - 1], 'x');

    const QByteArray mode = hugePageMode();
    if (mode != "always" && mode != "madvise") {
      QSKIP(qPrintable(QStringLiteral("transparent huge pages are '%1' on this kernel")
                           .arg(QString::fromLatin1(mode))));
    }
    const long after = anonymousHugePagesKiB();
    QVERIFY2(before >= 0 && after >= 0, "cannot read /proc/self/smaps_rollup");
    QVERIFY2(after - before >= 2048,
             qPrintable(QStringLiteral("AnonHugePages %1 -> %2 KiB").arg(before).arg(after)));
  }
};

QTEST_GUILESS_MAIN(HeapHugePagesTest)
#include "heap_huge_pages_test.moc"
