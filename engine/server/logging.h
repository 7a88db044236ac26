#pragma once

#include <QLoggingCategory>

namespace copycat::server {

/// Log category of the server runtime and its transport ("copycat.server").
Q_DECLARE_LOGGING_CATEGORY(lcServer)

}  // namespace copycat::server
