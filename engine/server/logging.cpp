#include "engine/server/logging.h"

namespace copycat::server {

Q_LOGGING_CATEGORY(lcServer, "copycat.server", QtInfoMsg)

}  // namespace copycat::server
