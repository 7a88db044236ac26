#include "engine/client/event_loop.h"

#include <QByteArray>
#include <QtGlobal>

namespace copycat {

void useFastEventLoop() {
  if (qEnvironmentVariableIsSet("QT_NO_GLIB") || qEnvironmentVariableIsSet("QT_NO_THREADED_GLIB"))
    return;
  qputenv("QT_NO_GLIB", QByteArrayLiteral("1"));
}

}  // namespace copycat
